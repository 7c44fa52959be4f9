"""Week-to-week drift of the embedded spans: the figures the schema's drift thresholds come from.

For each pair of consecutive embedded spans, prints TFDV's distance per feature (L-infinity for
categorical features, Jensen-Shannon divergence for numerical ones), then the largest seen and
the threshold `schemas/schema.pbtxt` sets. With `--min-rows`, also how many rows a span needs
before a comparison means anything: random samples of span 8 (a real, undrifted week) of
growing size against span 7, counting the samples that cross a threshold (false alarms); the
DriftGate's `min_span_rows` comes from this table.
Usage: `python benchmarks/studies/drift_variation.py [--root DIR] [--min-rows]`.
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from components.drift_gate import drift  # noqa: E402
from data import embedded  # noqa: E402
from schemas import load_schema  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="data root to use (default: a temp folder with the embedded spans)")
    parser.add_argument("--min-rows", action="store_true", help="also the rows-needed study")
    parser.add_argument("--samples", type=int, default=10, help="samples per size in the rows study")
    args = parser.parse_args()
    root = args.root or tempfile.mkdtemp(prefix="drift-")
    spans = embedded.materialize_spans(root)
    schema = load_schema()
    stats = [drift.span_statistics(drift.span_files(root, "span-{SPAN}/*.csv", s)) for s in spans]
    by_feature: dict[str, list[drift.Distance]] = {}
    for previous, current in zip(stats, stats[1:]):
        for distance in drift.distances(current, previous, schema):
            by_feature.setdefault(distance.feature, []).append(distance)
    print(
        f"{'feature':<24} {'measure':<15} "
        + " ".join(f"{a}->{b}".rjust(6) for a, b in zip(spans, spans[1:]))
        + "    max  threshold"
    )
    for feature, values in sorted(by_feature.items()):
        largest = max(v.value for v in values)
        print(
            f"{feature:<24} {values[0].measure:<15} "
            + " ".join(f"{v.value:6.3f}" for v in values)
            + f"  {largest:5.3f}  {values[0].threshold:9.3f}"
        )
    if args.min_rows:
        rows_needed(root, spans, schema, args.samples)


def rows_needed(root: str, spans: list[int], schema, samples: int) -> None:
    """False alarms of samples of the newest real week against the week before, by sample size."""
    import numpy as np
    import pandas as pd
    import tensorflow_data_validation as tfdv

    newest, previous = spans[-1], spans[-2]
    frame = pd.concat(
        pd.read_csv(f, dtype={"payment_type": str, "company": str})
        for f in drift.span_files(root, "span-{SPAN}/*.csv", newest)
    )
    reference = drift.span_statistics(drift.span_files(root, "span-{SPAN}/*.csv", previous))
    rng = np.random.default_rng(0)
    print(f"\nSamples of span {newest} ({len(frame)} rows) against span {previous}: false drift alarms")
    print(f"{'rows':>6} {'alarms':>8} {'median largest distance/threshold':>34}")
    for size in (100, 200, 300, 400, 500, 800, 1200):
        alarms, ratios = 0, []
        for _ in range(samples):
            sample = frame.sample(size, random_state=int(rng.integers(2**31)))
            found = drift.distances(tfdv.generate_statistics_from_dataframe(sample), reference, schema)
            alarms += any(d.drifted for d in found)
            ratios.append(max(d.value / d.threshold for d in found))
        print(f"{size:>6} {alarms:>4} / {samples:<3} {float(np.median(ratios)):>34.2f}")


if __name__ == "__main__":
    main()
