"""Real serving-vs-training variation of the embedded spans: the figures the skew thresholds come from.

A served week is a week the model never saw: its distance to the training statistics is real
week-to-week variation, which a skew threshold must tolerate, while a client sending fares in
cents or upper-cased company names must cross it. For each span k = 5..8 held out, this
computes TFDV's skew distance (the schema's `skew_comparator` measure) of span k, and of
`--samples` random samples of `--rows` trips of it (what the server's rolling window and a
short `monitor` period see), against the statistics of the four spans before it (the default
training window). It prints the largest distance per feature and the threshold the schema
sets (1.5x the largest, rounded up to 0.01, at least 0.02), then the distances of the two
client mistakes on span 8 (fares x100, company upper-cased), and the prediction-drift study:
the Jensen-Shannon divergence between a model's predictions on its eval split and on the
held-out span and its samples (needs `--model`, a SavedModel with our signatures).

Usage: `python benchmarks/studies/skew_variation.py [--root DIR] [--rows 800] [--samples 20] [--model DIR]`.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from data import embedded  # noqa: E402
from monitoring import drift, skew  # noqa: E402
from schemas import load_schema  # noqa: E402
from serving.replay_data import csv_to_examples  # noqa: E402

WINDOW = 4


def study_schema(schema):
    """The schema with a skew comparator on every feature that has a drift comparator (threshold 1)."""
    study = type(schema)()
    study.CopyFrom(schema)
    for feature in study.feature:
        if feature.HasField("drift_comparator"):
            feature.skew_comparator.CopyFrom(feature.drift_comparator)
            for field in ("infinity_norm", "jensen_shannon_divergence"):
                if feature.skew_comparator.HasField(field):
                    getattr(feature.skew_comparator, field).threshold = 1.0
    return study


def mistaken(path: str, edit) -> list[bytes]:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    edited = os.path.join(tempfile.mkdtemp(prefix="skew-"), "edited.csv")
    edit(frame).to_csv(edited, index=False)
    return csv_to_examples(edited)


def cents(frame):
    frame["fare"] = [f"{float(v) * 100:.2f}" if v else v for v in frame["fare"]]
    return frame


def upper(frame):
    frame["company"] = frame["company"].str.upper()
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="data root (default: a temp folder with the embedded spans)")
    parser.add_argument("--rows", type=int, default=skew.MIN_SERVED_EXAMPLES, help="sample size")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--model", help="a SavedModel: also the prediction-drift study")
    args = parser.parse_args()
    root = args.root or tempfile.mkdtemp(prefix="skew-")
    spans = embedded.materialize_spans(root)
    csv = {s: os.path.join(root, f"span-{s}", embedded.SPAN_FILE_NAME) for s in spans}
    examples = {s: csv_to_examples(csv[s]) for s in spans}
    schema = study_schema(load_schema())
    rng = np.random.default_rng(0)
    largest: dict[str, float] = {}
    measures: dict[str, str] = {}
    held_out = [s for s in spans if s > WINDOW]
    print(
        f"{'feature':<24} {'measure':<15} "
        + " ".join(f"span {s}".rjust(8) for s in held_out)
        + f"  samples of {args.rows}"
    )
    rows: dict[str, list[str]] = {}
    for span in held_out:
        training = skew.examples_statistics([e for s in range(span - WINDOW, span) for e in examples[s]])
        whole = skew.skew_distances(skew.examples_statistics(examples[span]), training, schema)
        sampled: dict[str, float] = {}
        for _ in range(args.samples):
            pick = rng.choice(len(examples[span]), size=min(args.rows, len(examples[span])), replace=False)
            sample = [examples[span][i] for i in pick]
            for d in skew.skew_distances(skew.examples_statistics(sample), training, schema):
                sampled[d.feature] = max(sampled.get(d.feature, 0.0), d.value)
        for d in whole:
            measures[d.feature] = d.measure
            rows.setdefault(d.feature, []).append(f"{d.value:8.3f}")
            largest[d.feature] = max(largest.get(d.feature, 0.0), d.value, sampled.get(d.feature, 0.0))
        for feature, value in sampled.items():
            rows.setdefault(feature + " (max sample)", []).append(f"{value:8.3f}")
    for feature in sorted(rows):
        base = feature.removesuffix(" (max sample)")
        print(f"{feature:<24} {measures.get(base, ''):<15} " + " ".join(rows[feature]))
    print(f"\n{'feature':<24} {'largest':>8} {'threshold (1.5x, >= 0.02)':>26}  schema's skew threshold")
    real = load_schema()
    current = {
        f.name: max(
            f.skew_comparator.infinity_norm.threshold, f.skew_comparator.jensen_shannon_divergence.threshold
        )
        for f in real.feature
        if f.HasField("skew_comparator")
    }
    for feature in sorted(largest):
        proposed = max(0.02, math.ceil(largest[feature] * 1.5 * 100) / 100)
        print(f"{feature:<24} {largest[feature]:8.3f} {proposed:26.2f}  {current.get(feature, '-')}")
    last = spans[-1]
    training = skew.examples_statistics([e for s in range(last - WINDOW, last) for e in examples[s]])
    print(f"\nClient mistakes on span {last} (against the schema's thresholds):")
    for name, edit in (("fares in cents", cents), ("company upper-cased", upper)):
        served = skew.examples_statistics(mistaken(csv[last], edit))
        found = [d.describe() for d in skew.skew_distances(served, training, real) if d.skewed]
        print(f"  {name}: {'; '.join(found) or 'nothing found'}")
    if args.model:
        prediction_study(args.model, examples, held_out, args.rows, args.samples, rng)


def prediction_study(model_dir, examples, held_out, rows, samples, rng) -> None:
    import tensorflow as tf

    from models.signatures import EXAMPLES_INPUT, PREDICTION_KEY, SERVING_SIGNATURE

    fn = tf.saved_model.load(model_dir).signatures[SERVING_SIGNATURE]

    def score(batch):
        return np.concatenate(
            [
                fn(**{EXAMPLES_INPUT: tf.constant(batch[i : i + 1024])})[PREDICTION_KEY].numpy().ravel()
                for i in range(0, len(batch), 1024)
            ]
        )

    print("\nPrediction drift (Jensen-Shannon, 10 bins) of each held-out span against the spans before it:")
    worst = worst_shift = 0.0
    for span in held_out:
        reference = score([e for s in range(span - WINDOW, span) for e in examples[s]])
        served = score(examples[span])
        values = [drift.prediction_drift(served, reference)]
        shifts = [abs(served.mean() - reference.mean())]
        for _ in range(samples):
            pick = rng.choice(len(served), size=min(rows, len(served)), replace=False)
            values.append(drift.prediction_drift(served[pick], reference))
            shifts.append(abs(served[pick].mean() - reference.mean()))
        worst = max(worst, max(values))
        worst_shift = max(worst_shift, max(shifts))
        print(
            f"  span {span}: whole {values[0]:.4f}, samples max {max(values[1:]):.4f}; "
            f"mean prediction shift whole {shifts[0]:.4f}, samples max {max(shifts[1:]):.4f}"
        )
    print(
        f"  largest {worst:.4f}; threshold (1.5x) {math.ceil(worst * 1.5 * 100) / 100:.2f}; "
        f"in use {drift.PREDICTION_DRIFT_THRESHOLD}"
    )
    print(
        f"  largest mean shift {worst_shift:.4f}; the Prometheus rule's bound (1.5x): "
        f"{math.ceil(worst_shift * 1.5 * 100) / 100:.2f}"
    )


if __name__ == "__main__":
    main()
