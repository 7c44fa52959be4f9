"""How far a held-out week's realized accuracy and AUC fall from the Evaluator's: monitor's tolerance.

On a replay root (`python -m pipeline replay --weeks 8 --root DIR`), each pushed version was
trained and evaluated on a window ending at span k; span k+1 is the week it would have served.
This scores that week's trips with the version (serving_default, as served) and prints the
realized figures beside the Evaluator's for the version, and the largest drop.
`monitor`'s DEFAULT_QUALITY_TOLERANCE should sit above the largest drop of a healthy model.

Usage: `python benchmarks/studies/realized_variation.py --root DIR`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def main() -> None:
    import tensorflow as tf

    from data import embedded
    from monitoring.lineage import version_lineage
    from monitoring.quality import DEFAULT_QUALITY_TOLERANCE, quality
    from pipeline.config import PipelineConfig
    from serving.eval_results import evaluation_metrics
    from serving.replay_data import csv_to_examples, labels_of
    from serving.versions import versions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="a replay root")
    args = parser.parse_args()
    config = PipelineConfig(root=Path(args.root))
    feed = Path(args.root) / "feed"
    print(
        f"{'version':>11} {'span':>5} {'week':>5} {'acc eval':>9} {'acc week':>9} "
        f"{'AUC eval':>9} {'AUC week':>9}"
    )
    drops = {"accuracy": [], "auc": []}
    for version in versions(config.serving_dir):
        lineage = version_lineage(config.metadata_path, version)
        week = (lineage.span or 0) + 1
        csv = feed / f"span-{week}" / embedded.SPAN_FILE_NAME
        if not csv.exists():
            continue
        examples = csv_to_examples(csv)
        fn = tf.saved_model.load(str(config.serving_dir / str(version))).signatures["serving_default"]
        scores = np.concatenate(
            [
                fn(examples=tf.constant(examples[i : i + 1024]))["probabilities"].numpy().ravel()
                for i in range(0, len(examples), 1024)
            ]
        )
        realized = quality(labels_of(examples), scores)
        overall = evaluation_metrics(lineage.evaluation_uri)[0]
        evaluator = {"accuracy": overall["binary_accuracy"], "auc": overall["auc"]}
        for metric in drops:
            drops[metric].append(evaluator[metric] - realized[metric])
        print(
            f"{version:>11} {lineage.span:>5} {week:>5} {evaluator['accuracy']:9.4f} "
            f"{realized['accuracy']:9.4f} "
            f"{evaluator['auc']:9.4f} {realized['auc']:9.4f}"
        )
    for metric, values in drops.items():
        print(
            f"{metric}: Evaluator minus the week after, largest {max(values):+.4f}, "
            f"median {np.median(values):+.4f}"
        )
    print(f"monitor's tolerance in use: {DEFAULT_QUALITY_TOLERANCE}")


if __name__ == "__main__":
    main()
