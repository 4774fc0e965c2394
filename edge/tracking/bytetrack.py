"""ByteTrack-style multi-object tracker on frame time.

Each ``update`` takes one frame's detections and its time in seconds:

1. every track's box is predicted to the frame time (constant-velocity Kalman, own ``dt``);
2. stage 1 matches high-score detections to confirmed tracks, active or lost (IoU);
3. stage 2 matches the low-score detections to confirmed tracks left, with a stricter IoU: an
   occluded object scores low, and this is what keeps its id through the occlusion;
4. stages 3 and 4 match the high-score detections left to confirmed, then tentative tracks by the
   Kalman (Mahalanobis) distance: at a low fps an object that starts, stops or has no known
   speed yet moves further than its own width between frames, and IoU alone loses it;
5. unmatched tentative tracks are dropped, unmatched confirmed tracks become lost and end once lost
   longer than ``lost_seconds``; unmatched detections scoring at least ``new_track_score`` start
   tentative tracks, confirmed (and given an id) after ``confirm_frames`` matched frames.

Matching is class-aware and optimal (SciPy's ``linear_sum_assignment``, imported only when
tracks compete for a detection). Everything runs on frame time, so a file gives the same ids on
every run (no clock, no randomness, ties broken by creation and input order), and the fps cap
does not change how long a track survives. The track table is bounded by ``max_tracks``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge.tracking.kalman import BoxKalman, MotionNoise, state_to_xyxy
from edge.types import Detections

F64 = npt.NDArray[np.float64]
Box = tuple[float, float, float, float]

GATE_CHI2_4 = 9.4877  # chi-square, 4 degrees of freedom, 95 %: the Mahalanobis gate of new tracks
ID_LIMIT = 2**31 - 1  # tracker ids are int32; the counter wraps to 1 after this


@dataclass(frozen=True)
class TrackerConfig:
    """Thresholds of the tracker. Scores are detection scores in [0, 1]; times are seconds.

    ``high_score``/``low_score``: detections at or above ``high_score`` take part in every stage,
    those in [``low_score``, ``high_score``) only keep existing tracks alive, lower ones are
    ignored. ``new_track_score``: least score that starts a track. ``match_iou``: least IoU of a
    high-score match, ``low_match_iou`` of a low-score one. ``confirm_frames``: matched frames
    before a track gets an id. ``lost_seconds``: how long a confirmed track is kept unseen.
    ``stationary``: the track's centre stayed within ``stationary_fraction`` of its larger side of
    one spot for ``stationary_seconds`` (a parked car, a left bag); measured from an anchor that
    moves to the current centre whenever the track leaves that radius, so it costs O(1) per track.
    ``max_tracks``: bound of the track table; lost tracks longest unseen go first, and beyond that
    no new track starts until there is room.
    """

    high_score: float = 0.5
    low_score: float = 0.1
    new_track_score: float = 0.6
    match_iou: float = 0.3
    low_match_iou: float = 0.5
    confirm_frames: int = 3
    lost_seconds: float = 1.0
    stationary_fraction: float = 0.1
    stationary_seconds: float = 10.0
    max_tracks: int = 512
    motion: MotionNoise = field(default_factory=MotionNoise)

    def __post_init__(self) -> None:
        if not 0.0 <= self.low_score <= self.high_score <= 1.0:
            raise ValueError(
                f"expected 0 <= low_score <= high_score <= 1, got {self.low_score} and {self.high_score}"
            )
        if not self.high_score <= self.new_track_score <= 1.0:
            raise ValueError(f"expected high_score <= new_track_score <= 1, got {self.new_track_score}")
        for name in ("match_iou", "low_match_iou"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        for name in ("confirm_frames", "max_tracks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        for name in ("lost_seconds", "stationary_seconds", "stationary_fraction"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")


@dataclass(frozen=True, slots=True)
class Track:
    """Snapshot of one track after an update; safe to hand to another thread.

    ``id`` is -1 until the track is confirmed. ``box`` is the filtered box (xyxy, frame pixels),
    predicted while the track is lost. ``first_seen`` and ``last_seen`` are frame times of the first
    and latest matched detection; ``score`` is the latest matched score, ``top_score`` the best.
    """

    id: int
    class_id: int
    box: Box
    score: float
    top_score: float
    first_seen: float
    last_seen: float
    hits: int
    confirmed: bool
    lost: bool
    stationary: bool


@dataclass(frozen=True)
class TrackResult:
    """What one ``update`` gives back.

    ``detections``: the input detections (same order and boxes) with ``tracker_id`` set to the id
    of the confirmed track each one fed, or -1. ``stationary``: bool per detection, True when its
    confirmed track is stationary. ``tracks``: every live track, confirmed and tentative, active
    and recently lost, in creation order. ``ended``: confirmed tracks removed by this update (lost
    too long, or pruned to honour ``max_tracks``); tentative tracks end silently.
    """

    detections: Detections
    stationary: npt.NDArray[np.bool_]
    tracks: tuple[Track, ...]
    ended: tuple[Track, ...]


class _State:
    """Mutable per-track record, private to the tracker (never crosses a thread). The Kalman state
    lives in the tracker's arrays, one row per track, in the order of its track list."""

    __slots__ = (
        "anchor_t",
        "anchor_x",
        "anchor_y",
        "class_id",
        "confirmed",
        "first_seen",
        "hits",
        "id",
        "last_seen",
        "lost",
        "score",
        "top_score",
    )

    def __init__(self, class_id: int, cx: float, cy: float, score: float, t: float) -> None:
        self.id = -1
        self.class_id = class_id
        self.score = score
        self.top_score = score
        self.first_seen = t
        self.last_seen = t
        self.hits = 1
        self.confirmed = False
        self.lost = False
        self.anchor_x = cx
        self.anchor_y = cy
        self.anchor_t = t

    def stationary(self, seconds: float) -> bool:
        return self.confirmed and self.last_seen - self.anchor_t >= seconds

    def snapshot(self, cxcywh: list[float], stationary_seconds: float) -> Track:
        """A frozen copy; ``cxcywh``: the track's filtered box as plain floats (cheap per frame)."""
        cx, cy, w, h = cxcywh
        half_w, half_h = max(w, 1.0) / 2, max(h, 1.0) / 2
        return Track(
            id=self.id,
            class_id=self.class_id,
            box=(cx - half_w, cy - half_h, cx + half_w, cy + half_h),
            score=self.score,
            top_score=self.top_score,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            hits=self.hits,
            confirmed=self.confirmed,
            lost=self.lost,
            stationary=self.stationary(stationary_seconds),
        )


def box_iou(a: F64, b: F64) -> F64:
    """IoU of every box in ``a`` (M, 4) with every box in ``b`` (N, 4), xyxy: (M, N)."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    out: F64 = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return out


def _assign(
    gain: F64, rows: npt.NDArray[np.intp], cols: npt.NDArray[np.intp], threshold: float
) -> list[tuple[int, int]]:
    """Maximum-IoU matching of ``rows`` x ``cols`` of ``gain``; pairs below ``threshold`` are not edges.

    Returns (row, col) pairs as indices into the full matrix, in row order.
    """
    if rows.size == 0 or cols.size == 0:
        return []
    sub = gain[np.ix_(rows, cols)]
    sub = np.where(sub >= threshold, sub, 0.0)
    edges = sub > 0.0
    if not edges.any():
        return []
    if (edges.sum(axis=0) <= 1).all() and (edges.sum(axis=1) <= 1).all():
        # No track competes for a detection: every edge is its own component, and taking them
        # all is the optimal matching. Objects apart from each other (the common case) never
        # load SciPy's optimiser (about 40 MB resident).
        r, c = np.nonzero(edges)
    else:
        from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped]

        r, c = linear_sum_assignment(sub, maximize=True)
    return [(int(rows[i]), int(cols[j])) for i, j in zip(r, c, strict=True) if sub[i, j] > 0.0]


class ByteTracker:
    """Tracker for one camera (and one model). Not thread-safe: one worker calls ``update``."""

    def __init__(self, config: TrackerConfig | None = None, ids: Iterator[int] | None = None) -> None:
        """``ids``: where track ids come from; pass the same counter to the tracker that
        replaces this one (a camera restarted by a reload) so ids are never reused."""
        self.config = config or TrackerConfig()
        self._ids = ids if ids is not None else itertools.count(1)
        self._kalman = BoxKalman(self.config.motion)
        self._tracks: list[_State] = []  # creation order: makes every tie deterministic
        self._mean: F64 = np.zeros((0, 8))  # Kalman states, one row per track in _tracks
        self._cov: F64 = np.zeros((0, 8, 8))
        self._t: float | None = None

    @property
    def track_count(self) -> int:
        """Tracks held right now (confirmed and tentative, active and lost); never above max_tracks."""
        return len(self._tracks)

    def reset(self) -> tuple[Track, ...]:
        """Forget every track (the camera went offline); returns the confirmed ones, now ended.

        The id counter keeps counting, so ids are not reused after the camera comes back.
        """
        ended = self._snapshots([k for k, s in enumerate(self._tracks) if s.confirmed])
        self._keep([])
        self._t = None
        return ended

    def _snapshots(self, rows: list[int]) -> tuple[Track, ...]:
        boxes = self._mean[rows, :4].tolist()
        seconds = self.config.stationary_seconds
        return tuple(self._tracks[k].snapshot(b, seconds) for k, b in zip(rows, boxes, strict=True))

    def _keep(self, rows: list[int]) -> None:
        """Keep only these tracks (indices into the track list, in order)."""
        self._tracks = [self._tracks[k] for k in rows]
        self._mean = self._mean[rows]
        self._cov = self._cov[rows]

    def _new_id(self) -> int:
        return (next(self._ids) - 1) % ID_LIMIT + 1

    def _predict(self, t: float) -> F64:
        """Move every track to time ``t``; returns their predicted boxes (T, 4)."""
        if not self._tracks:
            return np.zeros((0, 4))
        dt = 0.0 if self._t is None else max(t - self._t, 0.0)
        if dt > 0.0:
            self._mean, self._cov = self._kalman.predict(
                self._mean, self._cov, np.full(len(self._tracks), dt)
            )
        return state_to_xyxy(self._mean)

    def update(self, detections: Detections, t_frame: float) -> TrackResult:
        """Track one frame. ``t_frame``: the frame's time in seconds (monotonic; a time earlier than
        the previous frame's is treated as the same time)."""
        if not math.isfinite(t_frame):
            raise ValueError(f"t_frame must be a finite number of seconds, got {t_frame}")
        cfg = self.config
        t = t_frame if self._t is None else max(t_frame, self._t)
        predicted = self._predict(t)
        self._t = t

        n = len(detections)
        boxes = detections.xyxy.astype(np.float64)
        scores = detections.score
        pairs = self._associate(detections, boxes, predicted)
        det_state: list[_State | None] = [None] * n
        for ti, di in pairs:
            det_state[di] = self._tracks[ti]
        self._correct(pairs, boxes, scores, t)

        ended = self._retire(t)
        fresh = [int(d) for d in np.flatnonzero(scores >= cfg.new_track_score) if det_state[d] is None]
        room = cfg.max_tracks - len(self._tracks)
        if len(fresh) > room:
            ended += self._evict_lost(len(fresh) - room)
            room = cfg.max_tracks - len(self._tracks)
            fresh.sort(key=lambda d: (-float(scores[d]), d))  # best first when room is short
            fresh = sorted(fresh[:room])
        self._start(detections, boxes, fresh, det_state, t)
        return self._result(detections, det_state, ended)

    def _associate(self, detections: Detections, boxes: F64, predicted: F64) -> list[tuple[int, int]]:
        """The matching stages; returns (track index, detection index) pairs.

        1. IoU: confirmed tracks (active or lost) with high-score detections;
        2. IoU (stricter): confirmed tracks left with low-score detections (occlusion);
        3. motion gate: confirmed tracks left with high-score detections left;
        4. motion gate: tentative tracks with high-score detections left.

        The motion gate is the Kalman (Mahalanobis) distance: it catches what IoU misses at a low
        fps, where an object that starts, stops or has no known speed yet moves further than its
        own width between frames. All stages match only the same class.
        """
        cfg = self.config
        tracks = self._tracks
        scores = detections.score
        gain = box_iou(predicted, boxes)
        same_class = np.array([s.class_id for s in tracks], dtype=np.int64)[:, None] == detections.class_id[
            None, :
        ].astype(np.int64)
        gain[~same_class] = 0.0

        confirmed = np.array([i for i, s in enumerate(tracks) if s.confirmed], dtype=np.intp)
        high = np.flatnonzero(scores >= cfg.high_score)
        low = np.flatnonzero((scores >= cfg.low_score) & (scores < cfg.high_score))
        pairs = _assign(gain, confirmed, high, cfg.match_iou)
        used_t = {ti for ti, _ in pairs}
        left = np.array([i for i in confirmed if i not in used_t], dtype=np.intp)
        pairs += _assign(gain, left, low, cfg.low_match_iou)

        for group in (
            confirmed,
            np.array([i for i, s in enumerate(tracks) if not s.confirmed], dtype=np.intp),
        ):
            used_t = {ti for ti, _ in pairs}
            used_d = {di for _, di in pairs}
            rows = np.array([i for i in group if i not in used_t], dtype=np.intp)
            cols = np.array([d for d in high if d not in used_d], dtype=np.intp)
            if rows.size == 0 or cols.size == 0:
                continue
            dist = self._kalman.gating_distance(self._mean[rows], self._cov[rows], boxes[cols])
            close = np.zeros_like(gain)
            close[np.ix_(rows, cols)] = np.maximum(GATE_CHI2_4 - dist, 0.0) / GATE_CHI2_4
            close[~same_class] = 0.0
            pairs += _assign(close, rows, cols, 1e-9)
        return pairs

    def _start(
        self, detections: Detections, boxes: F64, fresh: list[int], det_state: list[_State | None], t: float
    ) -> None:
        """New tentative tracks (confirmed at once when ``confirm_frames`` is 1) at ``fresh`` detections."""
        if not fresh:
            return
        cfg = self.config
        idx = np.array(fresh, dtype=np.intp)
        mean, cov = self._kalman.initiate(boxes[idx])
        self._mean = np.concatenate([self._mean, mean])
        self._cov = np.concatenate([self._cov, cov])
        for k, d in enumerate(fresh):
            s = _State(
                int(detections.class_id[d]),
                float(mean[k, 0]),
                float(mean[k, 1]),
                float(detections.score[d]),
                t,
            )
            if cfg.confirm_frames <= 1:
                s.confirmed, s.id = True, self._new_id()
            self._tracks.append(s)
            det_state[d] = s

    def _result(
        self, detections: Detections, det_state: list[_State | None], ended: tuple[Track, ...]
    ) -> TrackResult:
        seconds = self.config.stationary_seconds
        ids = np.array([-1 if s is None or not s.confirmed else s.id for s in det_state], dtype=np.int32)
        still = np.array([s is not None and s.stationary(seconds) for s in det_state], dtype=np.bool_)
        return TrackResult(
            detections=Detections(
                detections.xyxy, detections.score, detections.class_id, detections.keypoints, ids
            ),
            stationary=still,
            tracks=self._snapshots(list(range(len(self._tracks)))),
            ended=ended,
        )

    def _correct(
        self, pairs: list[tuple[int, int]], boxes: F64, scores: npt.NDArray[np.float32], t: float
    ) -> None:
        """Kalman-update matched tracks, count hits, confirm, move stationary anchors."""
        cfg = self.config
        matched = {ti for ti, _ in pairs}
        if pairs:
            ti_arr = np.array([p[0] for p in pairs], dtype=np.intp)
            di_arr = np.array([p[1] for p in pairs], dtype=np.intp)
            mean, cov = self._kalman.update(self._mean[ti_arr], self._cov[ti_arr], boxes[di_arr])
            self._mean[ti_arr], self._cov[ti_arr] = mean, cov
            for (ti, di), (cx, cy, w, h) in zip(pairs, mean[:, :4].tolist(), strict=True):
                s = self._tracks[ti]
                s.hits += 1
                s.last_seen = t
                s.lost = False
                s.score = float(scores[di])
                s.top_score = max(s.top_score, s.score)
                if not s.confirmed and s.hits >= cfg.confirm_frames:
                    s.confirmed, s.id = True, self._new_id()
                if math.hypot(cx - s.anchor_x, cy - s.anchor_y) > cfg.stationary_fraction * max(w, h, 1.0):
                    s.anchor_x, s.anchor_y, s.anchor_t = cx, cy, t
        for i, s in enumerate(self._tracks):
            if i not in matched:
                s.lost = True

    def _retire(self, t: float) -> tuple[Track, ...]:
        """Drop missed tentative tracks and confirmed ones lost too long; returns the ended ones."""
        cfg = self.config
        keep: list[int] = []
        gone: list[int] = []
        for k, s in enumerate(self._tracks):
            if s.lost and (not s.confirmed or t - s.last_seen > cfg.lost_seconds):
                if s.confirmed:
                    gone.append(k)
            else:
                keep.append(k)
        ended = self._snapshots(gone)
        self._keep(keep)
        return ended

    def _evict_lost(self, count: int) -> tuple[Track, ...]:
        """Remove up to ``count`` lost tracks, longest unseen first, to make room for new ones."""
        order = sorted(
            (k for k, s in enumerate(self._tracks) if s.lost), key=lambda k: (self._tracks[k].last_seen, k)
        )[:count]
        gone = set(order)
        ended = self._snapshots([k for k in order if self._tracks[k].confirmed])
        self._keep([k for k in range(len(self._tracks)) if k not in gone])
        return ended
