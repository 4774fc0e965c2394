"""Multi-object tracking: ByteTrack-style association, Kalman box motion, stationary flag."""

from edge.tracking.bytetrack import ByteTracker, Track, TrackerConfig, TrackResult
from edge.tracking.kalman import BoxKalman, MotionNoise

__all__ = ["BoxKalman", "ByteTracker", "MotionNoise", "Track", "TrackResult", "TrackerConfig"]
