"""Command line: `python -m pipeline COMMAND`, one module per command group.

`run` runs the pipeline, `replay` simulates weeks of retraining, `schedule` puts the weekly
run in this machine's crontab, `runs` lists the run history (`runs show RUN`: one in full),
`report` summarises the newest run, `verify` runs the serving gate's checks on any SavedModel
with our signatures against raw data. `compile` writes the Kubeflow (KFP v2) pipeline spec,
`deploy` uploads it and keeps one weekly recurring run, `manifest --serving` prints the KServe
InferenceService for the pushed model. `serve` serves the pushed model over TF Serving's REST
API (and logs what it answers); `rollback` makes an older pushed version the served one;
`receive-logs` turns KServe's inference-logger events into the same logs;
`monitor` compares the logged requests with training data, the served predictions with eval,
and the served answers with real outcomes.

Groups: `training` (run, replay, schedule), `serving` (verify, serve, receive-logs, rollback),
`monitoring` (monitor), `history` (runs, report), `kubeflow` (compile, deploy, manifest). Exit statuses:
`pipeline.ops.exit_codes`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Must precede the first TensorFlow import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline.cli import history, kfp_run, kubeflow, monitoring, serving, training  # noqa: E402

GROUPS = (training, history, serving, monitoring, kubeflow, kfp_run)


def build_parser() -> argparse.ArgumentParser:
    """The `python -m pipeline` parser: every group's commands, each with its handler.

    Every command takes `--verbose`: library logs and warnings on the console instead of the
    log file (`pipeline.ops.console`).
    """
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_commands(commands)
    for command in commands.choices.values():
        if "--verbose" not in command._option_string_actions:
            command.add_argument(
                "--verbose",
                action="store_true",
                help="library logs and warnings on the console, not in <root>/logs/<command>-<time>.log",
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the command's handler with a quiet console; return its exit status.

    Whatever TensorFlow, absl, Beam and Python's warnings write goes to
    `<root>/logs/<command>-<time>.log` (the command's `--root`, else the default root), kept
    only when something was written; `--verbose` leaves it on the console.
    """
    from pipeline.config import DEFAULT_ROOT
    from pipeline.ops import console

    args = build_parser().parse_args(argv)
    root = getattr(args, "root", None) or DEFAULT_ROOT
    if args.verbose:
        log = None
    elif getattr(args, "check", False):
        log = Path(os.devnull)  # a pre-flight writes nothing, not even a log
    else:
        log = console.log_path(root, args.command)
    with console.library_output(log):
        return args.handler(args)
