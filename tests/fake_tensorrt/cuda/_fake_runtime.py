"""A FAKE of cuda-python's runtime API (``cuda.bindings.runtime`` / ``cuda.cudart``), for tests.

No machine here has an NVIDIA GPU. This module mimics the documented surface that
``edge.runners.tensorrt`` calls, with the same calling convention: every function returns a
tuple whose first item is a ``cudaError_t`` and whose rest are the values
(``err, ptr = cudaMalloc(n)``; ``(err,) = cudaFree(ptr)``).

"Device" memory is host memory here: each allocation is a numpy buffer kept alive in
``STATE``, and a pointer is that buffer's real address, so the fake TensorRT engine can read
and write it and ``cudaMemcpyAsync`` is a checked ``ctypes.memmove``. What it checks like the
real API would: pointers must come from the right allocator for the copy direction, copies
stay inside their allocation, freed pointers are invalid, streams must be live. It counts
allocations and frees so tests can see that buffers are allocated once and freed at close,
and ``STATE.fail`` makes the next call of a function fail with a given error.
It cannot show anything about real GPU timing, asynchrony, memory limits or alignment.
"""

from __future__ import annotations

import ctypes
import enum
from dataclasses import dataclass, field

import numpy as np


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInvalidDevicePointer = 17
    cudaErrorInvalidMemcpyDirection = 21
    cudaErrorInvalidResourceHandle = 400


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3
    cudaMemcpyDefault = 4


class cudaStream_t:
    def __init__(self, handle: int) -> None:
        self._handle = handle

    def __int__(self) -> int:
        return self._handle

    def getPtr(self) -> int:
        return self._handle


@dataclass
class cudaDeviceProp:
    name: bytes
    major: int
    minor: int
    totalGlobalMem: int


@dataclass
class FakeCudaState:
    gpu_name: str = "Orin (nvgpu)"
    capability: tuple[int, int] = (8, 7)
    device: dict[int, np.ndarray] = field(default_factory=dict)
    host: dict[int, np.ndarray] = field(default_factory=dict)
    streams: set[int] = field(default_factory=set)
    mallocs: int = 0
    host_mallocs: int = 0
    frees: int = 0
    host_frees: int = 0
    copies: int = 0
    fail: dict[str, cudaError_t] = field(default_factory=dict)
    _next_stream: int = 0x5000

    def live(self) -> int:
        """Device and pinned host allocations not yet freed."""
        return len(self.device) + len(self.host)


STATE = FakeCudaState()


def reset() -> None:
    """Forget every allocation, counter and injected failure (in place: modules that
    star-imported ``STATE`` keep seeing the same object)."""
    STATE.__dict__.update(FakeCudaState().__dict__)


def state() -> FakeCudaState:
    return STATE


def _failing(fn: str) -> cudaError_t | None:
    return STATE.fail.pop(fn, None)


def find(table: dict[int, np.ndarray], ptr: int, count: int) -> bool:
    """Whether [ptr, ptr + count) lies inside one allocation of ``table``."""
    return any(base <= ptr and ptr + count <= base + arr.nbytes for base, arr in table.items())


def _alloc(table: dict[int, np.ndarray], size: int) -> int:
    arr = np.zeros(max(int(size), 1), np.uint8)
    ptr = int(arr.ctypes.data)
    table[ptr] = arr
    return ptr


def cudaMalloc(size: int) -> tuple[cudaError_t, int]:
    if (err := _failing("cudaMalloc")) is not None:
        return err, 0
    STATE.mallocs += 1
    return cudaError_t.cudaSuccess, _alloc(STATE.device, size)


def cudaMallocHost(size: int) -> tuple[cudaError_t, int]:
    if (err := _failing("cudaMallocHost")) is not None:
        return err, 0
    STATE.host_mallocs += 1
    return cudaError_t.cudaSuccess, _alloc(STATE.host, size)


def cudaFree(ptr: int) -> tuple[cudaError_t]:
    if STATE.device.pop(int(ptr), None) is None:
        return (cudaError_t.cudaErrorInvalidDevicePointer,)
    STATE.frees += 1
    return (cudaError_t.cudaSuccess,)


def cudaFreeHost(ptr: int) -> tuple[cudaError_t]:
    if STATE.host.pop(int(ptr), None) is None:
        return (cudaError_t.cudaErrorInvalidValue,)
    STATE.host_frees += 1
    return (cudaError_t.cudaSuccess,)


def cudaStreamCreate() -> tuple[cudaError_t, cudaStream_t]:
    STATE._next_stream += 1
    STATE.streams.add(STATE._next_stream)
    return cudaError_t.cudaSuccess, cudaStream_t(STATE._next_stream)


def cudaStreamDestroy(stream: cudaStream_t | int) -> tuple[cudaError_t]:
    if int(stream) not in STATE.streams:
        return (cudaError_t.cudaErrorInvalidResourceHandle,)
    STATE.streams.discard(int(stream))
    return (cudaError_t.cudaSuccess,)


def cudaStreamSynchronize(stream: cudaStream_t | int) -> tuple[cudaError_t]:
    if (err := _failing("cudaStreamSynchronize")) is not None:
        return (err,)
    if int(stream) not in STATE.streams:
        return (cudaError_t.cudaErrorInvalidResourceHandle,)
    return (cudaError_t.cudaSuccess,)


def cudaMemcpyAsync(
    dst: int, src: int, count: int, kind: cudaMemcpyKind, stream: cudaStream_t | int
) -> tuple[cudaError_t]:
    if int(stream) not in STATE.streams:
        return (cudaError_t.cudaErrorInvalidResourceHandle,)
    tables = {
        cudaMemcpyKind.cudaMemcpyHostToDevice: (STATE.device, STATE.host),
        cudaMemcpyKind.cudaMemcpyDeviceToHost: (STATE.host, STATE.device),
    }
    if kind not in tables:
        return (cudaError_t.cudaErrorInvalidMemcpyDirection,)
    dst_table, src_table = tables[kind]
    if not (find(dst_table, int(dst), count) and find(src_table, int(src), count)):
        return (cudaError_t.cudaErrorInvalidValue,)
    ctypes.memmove(int(dst), int(src), int(count))
    STATE.copies += 1
    return (cudaError_t.cudaSuccess,)


def cudaGetDevice() -> tuple[cudaError_t, int]:
    return cudaError_t.cudaSuccess, 0


def cudaGetDeviceProperties(device: int) -> tuple[cudaError_t, cudaDeviceProp | None]:
    if device != 0:
        return cudaError_t.cudaErrorInvalidValue, None
    name = STATE.gpu_name.encode().ljust(256, b"\0")
    return cudaError_t.cudaSuccess, cudaDeviceProp(name, *STATE.capability, 8 << 30)
