"""Telemetry: one frozen figures snapshot (``figures``), built by the daemon, rendered as the
status line and the MQTT ``stats`` payload (``render``) and as Prometheus metrics (``metrics``).

Nothing here imports the daemon; this package file stays empty so that importing
``edge.telemetry.figures`` (the worker needs ``LATENCY_BUCKETS``) pulls in nothing else.
"""
