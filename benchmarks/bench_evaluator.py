"""The Evaluator alone: TFMA's stock per-example path vs the batched one, on the same rows.

Takes a finished run's pipeline root (its Trainer model, ExampleGen eval split and schema:
`make run`, or a `bench_scale.py` run at 10x or 100x), runs TFMA on the eval split both ways
as the TFX Evaluator does (the same model as candidate and baseline, as in a run with a
blessed baseline), in one process (Beam in memory), and prints the median wall time, eval
rows/s, and whether every metric of every slice agrees. The stock path reads with tfx_bsl's
`TFExampleRecord` (a record per Beam element) as TFX's Evaluator does; the batched one a file
per element, as the pipeline's Evaluator does (`components/file_batch_reads`).

    .venv/bin/python benchmarks/bench_evaluator.py --root runs/bench-scale/ours-10x/pipeline
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _newest(root: Path, pattern: str) -> Path:
    found = sorted(root.glob(pattern), key=lambda p: int(p.relative_to(root).parts[2]))
    if not found:
        raise SystemExit(f"bench_evaluator: nothing matches {root}/{pattern}: run the pipeline first")
    return found[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=Path("runs/default/pipeline"), help="a run's pipeline root"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--paths", default="stock,batched", help="which paths, comma-separated")
    args = parser.parse_args(argv)

    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx.utils import io_utils

    from components.file_batch_reads.tfxio import FileBatchTFExampleRecord
    from data.tfrecords import count_tfrecords
    from pipeline.eval_config import make_eval_config
    from tfma_batched import harness

    model = _newest(args.root, "Trainer/model/*/Format-Serving")
    split = _newest(args.root, "*ExampleGen/examples/*/Split-eval")
    files = sorted(str(p) for p in split.iterdir())
    schema = io_utils.parse_pbtxt_file(
        str(_newest(args.root, "ImportSchemaGen/schema/*/schema.pbtxt")), schema_pb2.Schema()
    )
    rows = count_tfrecords(files)
    print(f"model {model}\neval split {split}: {rows:,} rows in {len(files)} files")
    values = {}
    for path in args.paths.split(","):
        batched = path == "batched"
        seconds = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                harness.evaluate(
                    model_path=str(model),
                    baseline_path=str(model),
                    example_patterns=files,
                    schema=schema,
                    eval_config=make_eval_config(0.5, 0.1, batched=batched),
                    output_path=out,
                    batched=batched,
                    # The batched path reads as the pipeline's Evaluator does, the stock one as TFX's.
                    tfxio_type=FileBatchTFExampleRecord if batched else None,
                )
                seconds.append(time.perf_counter() - start)
                values[path] = harness.metric_values(out)
        median = statistics.median(seconds)
        runs = ", ".join(f"{s:.1f}" for s in seconds)
        print(
            f"{path:8s} median {median:6.1f} s ({runs}); {rows / median:8,.0f} eval rows/s; "
            f"{len(values[path])} metric values"
        )
    if len(values) == 2:
        stock, batched = values["stock"], values["batched"]
        same_keys = set(stock) == set(batched)
        worst = max((abs(stock[k] - batched[k]) / max(1.0, abs(stock[k])), k) for k in stock if k in batched)
        print(f"same slices and metric keys: {same_keys}; largest relative difference {worst[0]:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
