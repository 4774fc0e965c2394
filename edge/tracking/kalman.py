"""Constant-velocity Kalman filter for boxes, batched over tracks, numpy only.

State per track: ``(cx, cy, w, h, vcx, vcy, vw, vh)`` in frame pixels and pixels per second.
Frames arrive at irregular times (an fps cap, dropped frames, a slow model), so every step takes
its own ``dt`` in seconds and the process noise is the continuous white-acceleration model
integrated over ``dt``: a 0.5 s gap widens the uncertainty more than a 0.1 s one. Noise scales
with the box size, so a far (small) object and a near (large) one behave alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

_MIN_SIDE = 1.0  # pixels: a predicted box never collapses below this


@dataclass(frozen=True)
class MotionNoise:
    """Noise of the box motion model, as fractions of the box size ``(w + h) / 2``.

    ``measurement``: standard deviation of a detected edge position (per box).
    ``acceleration``: of the centre, in sizes per second squared (how quickly objects turn).
    ``resize``: of the width and height rate, in sizes per second squared.
    ``initial_speed``: prior standard deviation of a new track's speed, in sizes per second.
    """

    measurement: float = 0.05
    acceleration: float = 1.0
    resize: float = 0.2
    initial_speed: float = 1.0

    def __post_init__(self) -> None:
        for name in ("measurement", "acceleration", "resize", "initial_speed"):
            if not getattr(self, name) > 0:
                raise ValueError(f"MotionNoise.{name} must be > 0, got {getattr(self, name)}")


def xyxy_to_state(xyxy: F64) -> F64:
    """(N, 4) corner boxes to (N, 4) measurements ``(cx, cy, w, h)``."""
    out = np.empty_like(xyxy)
    out[:, 0] = (xyxy[:, 0] + xyxy[:, 2]) * 0.5
    out[:, 1] = (xyxy[:, 1] + xyxy[:, 3]) * 0.5
    out[:, 2] = np.maximum(xyxy[:, 2] - xyxy[:, 0], _MIN_SIDE)
    out[:, 3] = np.maximum(xyxy[:, 3] - xyxy[:, 1], _MIN_SIDE)
    return out


def state_to_xyxy(mean: F64) -> F64:
    """(N, 8) states to (N, 4) corner boxes."""
    half_w = np.maximum(mean[:, 2], _MIN_SIDE) * 0.5
    half_h = np.maximum(mean[:, 3], _MIN_SIDE) * 0.5
    return np.stack(
        [mean[:, 0] - half_w, mean[:, 1] - half_h, mean[:, 0] + half_w, mean[:, 1] + half_h], axis=1
    )


def _size(mean: F64) -> F64:
    return np.asarray((np.maximum(mean[:, 2], _MIN_SIDE) + np.maximum(mean[:, 3], _MIN_SIDE)) * 0.5)


class BoxKalman:
    """Batched predict and update; holds no track state (the tracker owns the arrays)."""

    def __init__(self, noise: MotionNoise | None = None) -> None:
        self.noise = noise or MotionNoise()

    def initiate(self, xyxy: F64) -> tuple[F64, F64]:
        """States ``(N, 8)`` and covariances ``(N, 8, 8)`` for new tracks at the given boxes."""
        z = xyxy_to_state(np.asarray(xyxy, dtype=np.float64).reshape(-1, 4))
        n = z.shape[0]
        mean = np.zeros((n, 8))
        mean[:, :4] = z
        size = _size(mean)
        std = np.empty((n, 8))
        std[:, :4] = 2.0 * self.noise.measurement * size[:, None]
        std[:, 4:6] = self.noise.initial_speed * size[:, None]
        std[:, 6:] = 0.1 * self.noise.initial_speed * size[:, None]
        cov = np.zeros((n, 8, 8))
        idx = np.arange(8)
        cov[:, idx, idx] = std**2
        return mean, cov

    def predict(self, mean: F64, cov: F64, dt: F64) -> tuple[F64, F64]:
        """Advance each state by its own ``dt`` (seconds, (N,), negative treated as 0)."""
        dt = np.maximum(np.asarray(dt, dtype=np.float64).reshape(-1), 0.0)
        n = mean.shape[0]
        if n == 0:
            return mean.copy(), cov.copy()
        new_mean = mean.copy()
        new_mean[:, :4] += mean[:, 4:] * dt[:, None]
        new_mean[:, 2:4] = np.maximum(new_mean[:, 2:4], _MIN_SIDE)
        size = _size(mean)
        acc = np.empty((n, 4))
        acc[:, :2] = self.noise.acceleration * size[:, None]
        acc[:, 2:] = self.noise.resize * size[:, None]
        q = acc**2  # spectral density of the white acceleration, per axis
        # F P F^T with F = [[I, dt I], [0, I]], by blocks (cheaper than two 8x8 products):
        # [[A + dt (B + B^T) + dt^2 C, B + dt C], [B^T + dt C, C]].
        d = dt[:, None, None]
        a_blk, b_blk, c_blk = cov[:, :4, :4], cov[:, :4, 4:], cov[:, 4:, 4:]
        new_cov = np.empty_like(cov)
        bc = b_blk + d * c_blk
        new_cov[:, :4, :4] = a_blk + d * (b_blk + b_blk.transpose(0, 2, 1)) + d * d * c_blk
        new_cov[:, :4, 4:] = bc
        new_cov[:, 4:, :4] = bc.transpose(0, 2, 1)
        new_cov[:, 4:, 4:] = c_blk
        # Continuous white acceleration integrated over dt, per axis.
        i4 = np.arange(4)
        new_cov[:, i4, i4] += q * (dt**3 / 3.0)[:, None]
        cross = q * (dt**2 / 2.0)[:, None]
        new_cov[:, i4, i4 + 4] += cross
        new_cov[:, i4 + 4, i4] += cross
        new_cov[:, i4 + 4, i4 + 4] += q * dt[:, None]
        return new_mean, new_cov

    def update(self, mean: F64, cov: F64, xyxy: F64) -> tuple[F64, F64]:
        """Correct each state with its measured box ``(N, 4)`` (xyxy)."""
        if mean.shape[0] == 0:
            return mean.copy(), cov.copy()
        z = xyxy_to_state(np.asarray(xyxy, dtype=np.float64).reshape(-1, 4))
        r_std = self.noise.measurement * _size(mean)
        s = cov[:, :4, :4].copy()
        i4 = np.arange(4)
        s[:, i4, i4] += (r_std**2)[:, None]
        pht = cov[:, :, :4]  # P H^T, (N, 8, 4)
        # K = P H^T S^-1, solved as S K^T = H P (S symmetric).
        gain = np.linalg.solve(s, pht.transpose(0, 2, 1)).transpose(0, 2, 1)
        innovation = z - mean[:, :4]
        new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
        new_cov = cov - gain @ s @ gain.transpose(0, 2, 1)
        new_cov = (new_cov + new_cov.transpose(0, 2, 1)) * 0.5  # keep it symmetric
        new_mean[:, 2:4] = np.maximum(new_mean[:, 2:4], _MIN_SIDE)
        return new_mean, new_cov

    def gating_distance(self, mean: F64, cov: F64, xyxy: F64) -> F64:
        """Squared Mahalanobis distance (T, N) of each measured box from each predicted state.

        Under the model it follows a chi-square law with 4 degrees of freedom (95 % below 9.49).
        A track whose speed is still unknown has a wide gate; a settled one a narrow gate.
        """
        z = xyxy_to_state(np.asarray(xyxy, dtype=np.float64).reshape(-1, 4))
        if mean.shape[0] == 0 or z.shape[0] == 0:
            return np.zeros((mean.shape[0], z.shape[0]))
        s = cov[:, :4, :4].copy()
        i4 = np.arange(4)
        s[:, i4, i4] += ((self.noise.measurement * _size(mean)) ** 2)[:, None]
        inv = np.linalg.inv(s)
        diff = z[None, :, :] - mean[:, None, :4]
        out: F64 = np.einsum("tni,tij,tnj->tn", diff, inv, diff)
        return out
