"""Week-to-week drift of the embedded spans: the figures the schema's drift thresholds come from.

For each pair of consecutive embedded spans, prints TFDV's distance per feature (L-infinity for
categorical features, Jensen-Shannon divergence for numerical ones), then the largest seen and
the threshold `schemas/schema.pbtxt` sets. Usage: `python benchmarks/drift_variation.py [--root DIR]`.
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


if __name__ == "__main__":
    main()
