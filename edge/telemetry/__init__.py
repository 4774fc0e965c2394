"""Metrics: Prometheus text exposition of the running daemon's counters."""
