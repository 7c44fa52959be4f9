"""Commands `verify`, `serve` and `rollback`: check a model, serve the pushed one, pin a version."""

from __future__ import annotations

import argparse
import sys

from pipeline.config import DEFAULT_ROOT, PipelineConfig
from pipeline.ops.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def add_commands(commands) -> None:
    """Add `verify`, `serve` and `rollback` to the CLI's subparsers."""
    verify = commands.add_parser(
        "verify",
        help="run the serving gate's checks on a SavedModel (or the edge gate's on a .tflite) "
        "against raw data",
    )
    verify.add_argument(
        "--model",
        required=True,
        help="a SavedModel folder, a Trainer model artifact, or a serving directory (newest version); "
        "or an edge model: a .tflite file, or a folder holding model.tflite",
    )
    verify.add_argument(
        "--data",
        required=True,
        help="a CSV with the taxi columns (or a folder of them), an ExampleGen examples artifact "
        "(its eval split), or a folder of TFRecord files",
    )
    verify.add_argument("--split", default="eval", help="split to read from an ExampleGen artifact")
    verify.add_argument(
        "--evaluation",
        help="an Evaluator output folder: the served accuracy and AUC must reproduce its figures",
    )
    verify.add_argument("--metric-tolerance", type=float, default=None)
    verify.add_argument("--parity-tolerance", type=float, default=None)
    verify.add_argument(
        "--reference",
        help="edge model: the SavedModel it must agree with (default: the saved_model its "
        "metadata.json names; without one the agreement check is skipped)",
    )
    verify.add_argument(
        "--accuracy-tolerance", type=float, default=None, help="edge model: largest accuracy gap (0.01)"
    )
    verify.add_argument(
        "--auc-tolerance", type=float, default=None, help="edge model: largest AUC gap (0.005)"
    )
    verify.add_argument("--json", dest="json_path", help="also write the verdict as JSON here")
    verify.set_defaults(handler=verify_command)
    serve = commands.add_parser(
        "serve", help="serve the pushed model (KServe model server, TF Serving REST API)"
    )
    serve.add_argument(
        "--root",
        default=None,
        help=f"run root: its serving directory, ML Metadata and prediction logs (default {DEFAULT_ROOT}, "
        "or the root above --serving-dir)",
    )
    serve.add_argument("--serving-dir", help="the model's serving base directory (default: the root's)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)")
    serve.add_argument("--port", type=int, default=8501)
    serve.add_argument("--poll-s", type=float, default=1.0, help="how often to look for a new version")
    serve.add_argument("--log-dir", help="prediction logs (default: <root>/prediction-logs)")
    serve.add_argument(
        "--no-prediction-log", action="store_true", help="no prediction log and no live skew gauges"
    )
    serve.add_argument(
        "--log-sample-rate",
        type=float,
        default=1.0,
        help="share of answered examples written to the prediction log (0: none; default 1.0)",
    )
    serve.add_argument("--log-max-mb", type=float, default=1024.0, help="cap on the log folder's size")
    serve.add_argument("--log-max-age-days", type=float, default=30.0, help="log files older than this go")
    serve.add_argument("--log-rotate-s", type=float, default=300.0, help="close a log file after this long")
    serve.add_argument(
        "--skew-window", type=int, default=1000, help="recent examples behind the live skew gauges"
    )
    serve.add_argument("--skew-interval-s", type=float, default=10.0, help="how often the gauges update")
    serve.add_argument(
        "--data-root",
        help="where the /web/ page's trips come from (the newest span): default the data root of the run "
        "that pushed the served version (ML Metadata), else <root>/data",
    )
    serve.set_defaults(handler=serve_command)
    receive = commands.add_parser(
        "receive-logs",
        help="receive KServe's inference-logger CloudEvents into the prediction logs (for monitor)",
    )
    receive.add_argument("--root", default=None, help=f"run root (default {DEFAULT_ROOT})")
    receive.add_argument("--serving-dir", help="the model's serving base directory (default: the root's)")
    receive.add_argument("--log-dir", help="prediction logs (default: <root>/prediction-logs)")
    receive.add_argument("--host", default="127.0.0.1")
    receive.add_argument("--port", type=int, default=8502)
    receive.set_defaults(handler=receive_logs_command)
    rollback = commands.add_parser("rollback", help="serve an older pushed version (newer ones are kept)")
    rollback.add_argument("--root", default=str(DEFAULT_ROOT))
    rollback.add_argument("--serving-dir", help="the model's serving base directory (default: the root's)")
    target = rollback.add_mutually_exclusive_group()
    target.add_argument(
        "--to", type=int, help="the version to serve (default: the one before the served one)"
    )
    target.add_argument("--clear", action="store_true", help="remove the pin: serve the newest version again")
    rollback.set_defaults(handler=rollback_command)


def _edge_model_file(path: str):
    """The .tflite that `--model` names (a file, or a folder holding model.tflite), else None."""
    from pathlib import Path

    from components.edge_export.spec import MODEL_FILE_NAME

    path = Path(path)
    if path.suffix == ".tflite":
        return path
    return path / MODEL_FILE_NAME if (path / MODEL_FILE_NAME).is_file() else None


def _edge_reference(args: argparse.Namespace, model_file) -> str | None:
    """--reference, else the SavedModel the edge model's metadata.json names (if it exists)."""
    import json

    from components.edge_export.spec import METADATA_FILE_NAME
    from serving.model_dirs import resolve_model_dir
    from serving.replay_data import ReplayDataError

    if args.reference:
        return str(resolve_model_dir(args.reference))
    metadata = model_file.parent / METADATA_FILE_NAME
    if not metadata.is_file():
        return None
    try:
        saved_model = json.loads(metadata.read_text()).get("saved_model")
    except ValueError as error:
        raise ReplayDataError(f"{metadata}: not JSON ({error})") from None
    try:
        return str(resolve_model_dir(saved_model)) if saved_model else None
    except FileNotFoundError:
        return None


def verify_edge_command(args: argparse.Namespace, model_file) -> int:
    """The edge gate's checks on a TFLite model; agreement against --reference or its SavedModel."""
    from serving import edge_gate_checks as edge_checks
    from serving.replay_data import ReplayDataError, load_replay_examples

    accuracy_tolerance = (
        edge_checks.DEFAULT_ACCURACY_TOLERANCE if args.accuracy_tolerance is None else args.accuracy_tolerance
    )
    auc_tolerance = edge_checks.DEFAULT_AUC_TOLERANCE if args.auc_tolerance is None else args.auc_tolerance
    if accuracy_tolerance < 0 or auc_tolerance < 0:
        print("error: tolerances must be non-negative", file=sys.stderr)
        return EXIT_USAGE
    try:
        if not model_file.is_file():
            raise FileNotFoundError(f"no edge model at {model_file}")
        flatbuffer = model_file.read_bytes()
        reference = _edge_reference(args, model_file)
        examples = load_replay_examples(args.data, split=args.split)
    except (FileNotFoundError, ReplayDataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    verdict = edge_checks.run_edge_checks(
        flatbuffer,
        examples,
        reference=reference,
        accuracy_tolerance=accuracy_tolerance,
        auc_tolerance=auc_tolerance,
        name=str(model_file),
    )
    print(verdict.format())
    if reference:
        print(f"Compared with the SavedModel at {reference}")
    if args.json_path:
        with open(args.json_path, "w") as handle:
            handle.write(verdict.to_json())
    return EXIT_OK if verdict.blessed else EXIT_FAILED


def verify_command(args: argparse.Namespace) -> int:
    """Run the serving gate's checks on `--model` against `--data`; print the verdict."""
    from serving import gate_checks as checks
    from serving.model_dirs import resolve_model_dir
    from serving.replay_data import ReplayDataError, load_replay_examples

    model_file = _edge_model_file(args.model)
    if model_file is not None:
        return verify_edge_command(args, model_file)

    metric_tolerance = (
        checks.DEFAULT_METRIC_TOLERANCE if args.metric_tolerance is None else args.metric_tolerance
    )
    parity_tolerance = (
        checks.DEFAULT_PARITY_TOLERANCE if args.parity_tolerance is None else args.parity_tolerance
    )
    if metric_tolerance < 0 or parity_tolerance < 0:
        print("error: tolerances must be non-negative", file=sys.stderr)
        return EXIT_USAGE
    try:
        model_dir = resolve_model_dir(args.model)
        examples = load_replay_examples(args.data, split=args.split)
        evaluator = None
        if args.evaluation:
            from serving.eval_results import evaluation_metrics

            evaluator, _ = evaluation_metrics(args.evaluation)
            if not evaluator:
                raise FileNotFoundError(f"no overall metrics in the evaluation at {args.evaluation}")
    except (FileNotFoundError, ReplayDataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    verdict = checks.run_checks(str(model_dir), examples, evaluator, metric_tolerance, parity_tolerance)
    print(verdict.format())
    if args.json_path:
        with open(args.json_path, "w") as handle:
            handle.write(verdict.to_json())
    return EXIT_OK if verdict.blessed else EXIT_FAILED


def _root(args: argparse.Namespace):
    """The run root: --root; else the one --serving-dir sits in (<root>/serving/<model>); else the default."""
    from pathlib import Path

    if getattr(args, "root", None):
        return Path(args.root)
    if getattr(args, "serving_dir", None):
        return Path(args.serving_dir).absolute().parent.parent
    return DEFAULT_ROOT


def _serving_base(args: argparse.Namespace):
    from pathlib import Path

    return Path(args.serving_dir) if args.serving_dir else PipelineConfig(root=_root(args)).serving_dir


def serve_command(args: argparse.Namespace) -> int:
    """Run the model server until interrupted."""
    import logging

    from serving import server as model_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    base = _serving_base(args)
    if not 0.0 <= args.log_sample_rate <= 1.0:
        print(f"error: --log-sample-rate must be within 0..1, got {args.log_sample_rate}", file=sys.stderr)
        return EXIT_USAGE
    if args.skew_window < 1 or args.skew_interval_s <= 0 or args.log_rotate_s <= 0:
        print("error: --skew-window, --skew-interval-s and --log-rotate-s must be positive", file=sys.stderr)
        return EXIT_USAGE
    logger, live_skew = (None, None) if args.no_prediction_log else _prediction_log(args)
    try:
        model_server.serve(
            PipelineConfig(root=_root(args)).model_name,
            base,
            args.host,
            args.port,
            args.poll_s,
            logger=logger,
            live_skew=live_skew,
            web=_web_page(args, base),
        )
    except FileNotFoundError as error:
        print(f"error: {error}; run the pipeline first (make run)", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        print(f"error: cannot serve on {args.host}:{args.port}: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _prediction_log(args: argparse.Namespace):
    """The server's PredictionLogger and RollingSkew (training statistics found via ML Metadata)."""
    from pathlib import Path

    from monitoring.skew import RollingSkew, reference_for
    from schemas import load_schema
    from serving.prediction_log import LOG_FOLDER, PredictionLogger

    root = _root(args)
    config = PipelineConfig(root=root)
    live_skew = RollingSkew(
        reference_for(config.metadata_path),
        load_schema(),
        window=args.skew_window,
        interval_s=args.skew_interval_s,
    )
    logger = PredictionLogger(
        Path(args.log_dir) if args.log_dir else root / LOG_FOLDER,
        sample_rate=args.log_sample_rate,
        max_total_bytes=int(args.log_max_mb * (1 << 20)),
        max_age_s=args.log_max_age_days * 86400.0,
        rotate_s=args.log_rotate_s,
        observers=[live_skew.observe],
    )
    return logger, live_skew


def _web_page(args: argparse.Namespace, base):
    """The /web/ page: the web models pushed beside `base`, trips from the served version's data."""
    from components.pusher.spec import WEB_FOLDER
    from components.web_export.spec import METADATA_FILE_NAME
    from serving.web_page import WebPage

    config = PipelineConfig(root=_root(args))
    return WebPage(
        config.model_name, base / WEB_FOLDER, METADATA_FILE_NAME, lambda v: _newest_span(args, config, v)
    )


def _run_data_root(metadata_path, version: int) -> str | None:
    """ExampleGen's input_base in the run that pushed `version` (ML Metadata lineage), or None."""
    from tfx.types.standard_component_specs import INPUT_BASE_KEY

    from monitoring.lineage import OUTPUT, LineageError, open_store, version_lineage

    try:
        lineage = version_lineage(metadata_path, version)
    except (FileNotFoundError, LineageError):
        return None
    store = open_store(metadata_path)
    for examples in store.get_artifacts_by_uri(lineage.examples_uri):
        events = store.get_events_by_artifact_ids([examples.id])
        for execution in store.get_executions_by_id([e.execution_id for e in events if e.type == OUTPUT]):
            value = execution.custom_properties.get(INPUT_BASE_KEY) or execution.properties.get(
                INPUT_BASE_KEY
            )
            if value is not None and value.string_value:
                return value.string_value
    return None


def _newest_span(args: argparse.Namespace, config: PipelineConfig, version: int):
    """The /web/ page's trips: the newest span of --data-root, else of the version's run, else <root>/data."""
    from tfx.dsl.io import fileio

    from components.example_gen.driver import SPAN_SPEC, available_spans
    from pipeline.pipeline import SPAN_PATTERN
    from serving.web_page import SpanFiles

    root, source = args.data_root, "--data-root"
    if not root:
        root = _run_data_root(config.metadata_path, version)
        source = f"the data root of the run that pushed version {version}"
    if not root:
        root = str(config.span_data_root)
        source = f"the run root's data: no run in {config.metadata_path} pushed version {version}"
    spans = available_spans(root, SPAN_PATTERN)
    if not spans:
        return SpanFiles(root, None, (), source)
    files = fileio.glob(f"{root.rstrip('/')}/{SPAN_PATTERN.replace(SPAN_SPEC, str(spans[-1]))}")
    return SpanFiles(root, spans[-1], tuple(sorted(files)), source)


def receive_logs_command(args: argparse.Namespace) -> int:
    """Run the CloudEvent receiver until interrupted."""
    from pathlib import Path

    from monitoring.kserve_logger import CloudEventReceiver, serve_receiver
    from serving.prediction_log import LOG_FOLDER, PredictionLogger
    from serving.versions import target_version

    base = _serving_base(args)
    logger = PredictionLogger(Path(args.log_dir) if args.log_dir else _root(args) / LOG_FOLDER)
    try:
        serve_receiver(CloudEventReceiver(logger, lambda: target_version(base)), args.host, args.port)
    except OSError as error:
        print(f"error: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        logger.close()
    return EXIT_OK


def rollback_command(args: argparse.Namespace) -> int:
    """Pin an older version (or clear the pin) and say what changed."""
    from serving import versions

    base = _serving_base(args)
    available = versions.versions(base)
    current = versions.target_version(base)
    if current is None:
        print(f"error: no pushed version in {base}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.clear:
            before, after = versions.pin_version(base, None)
        else:
            version = args.to
            if version is None:
                older = [v for v in available if v < current]
                if not older:
                    print(
                        f"error: {current} is the oldest pushed version; nothing to roll back to",
                        file=sys.stderr,
                    )
                    return EXIT_USAGE
                version = older[-1]
            before, after = versions.pin_version(base, version, reason=f"rollback from {current}")
    except versions.VersionError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    newer = [v for v in available if v > (after or 0)]
    if before == after:
        print(f"Selected version unchanged: {after}")
    else:
        print(f"Selected version: {before} -> {after} (the version `serve` loads from {base})")
    if args.clear:
        print("Pin removed: the newest pushed version is served, and each new push will be.")
    else:
        print(f"Pinned in {base / versions.PIN_FILE}; kept newer versions: {newer or 'none'}.")
        print("New pushes are not served until `python -m pipeline rollback --clear`.")
    print("A running `serve` switches within its poll interval.")
    return EXIT_OK
