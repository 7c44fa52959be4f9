"""Command `kfp-run`: run the compiled KFP pipeline spec here, as KFP's driver and launcher would.

`pipeline.ops.kfp_run` does the work; this module parses the options and maps the outcome to an
exit status: OK when every task succeeded or was skipped, USAGE when the spec is refused or the
parameters are wrong (nothing ran), FAILED when a task failed.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.ops.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def add_commands(commands) -> None:
    """Add `kfp-run` to the CLI's subparsers."""
    kfp_run = commands.add_parser(
        "kfp-run",
        help="run a compiled KFP pipeline spec on this machine, each task its own process",
    )
    kfp_run.set_defaults(handler=kfp_run_command)
    kfp_run.add_argument(
        "spec", nargs="?", default="kubeflow/build/pipeline.yaml", help="the compiled pipeline (YAML or JSON)"
    )
    kfp_run.add_argument(
        "--run-root", required=True, help="local folder for logs/<task>.log, task scratch and kfp-run.json"
    )
    kfp_run.add_argument("--pipeline-root", help="instead of the spec's defaultPipelineRoot")
    kfp_run.add_argument(
        "--rewrite",
        action="append",
        default=[],
        metavar="FROM=TO",
        help="replace FROM with TO in every string of the spec, e.g. gs://bucket/=/tmp/bucket/; repeatable",
    )
    kfp_run.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="runtime parameter; repeatable"
    )
    kfp_run.add_argument("--run-id", help="the run's id in every output URI (default: a fresh uuid)")
    kfp_run.add_argument(
        "--check", action="store_true", help="only the refusals and the input checks: run no task"
    )


def _pair(text: str, option: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(f"{option} wants {'NAME=VALUE' if option == '--param' else 'FROM=TO'}, got {text!r}")
    return name, value


def kfp_run_command(args: argparse.Namespace) -> int:
    """Check the spec, then run it (unless --check); one line per task, one at the end."""
    from pipeline.ops import kfp_run

    try:
        params = dict(_pair(p, "--param") for p in args.param)
        rewrites = [_pair(r, "--rewrite") for r in args.rewrite]
        spec = kfp_run.load_spec(args.spec)
        options = dict(params=params, rewrites=rewrites, pipeline_root=args.pipeline_root, run_id=args.run_id)
        if args.check:
            plan = kfp_run.plan_run(spec, **options)
        else:
            result = kfp_run.run_spec(spec, run_root=args.run_root, **options)
    except ValueError as error:  # KfpSpecError is one
        for line in str(error).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    if args.check:
        order = ", ".join(plan.order)
        print(f"kfp-run check: {plan.pipeline_name}, {len(plan.order)} tasks in order: {order}")
        print(f"  run root {plan.pipeline_root}; parameters {plan.root_values}")
        return EXIT_OK
    counts = {state: sum(t.state == state for t in result.tasks) for state in ("succeeded", "skipped")}
    if not result.ok:
        print(
            f"error: task {result.failed_task} failed after {result.seconds:.1f} s; "
            f"summary {result.summary}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(
        f"kfp-run {result.run_id}: {counts['succeeded']} succeeded, {counts['skipped']} skipped "
        f"in {result.seconds:.1f} s; outputs under {result.pipeline_root}; summary {result.summary}"
    )
    return EXIT_OK
