"""DriftGate executor: newest span vs previous span, distances against the schema's thresholds.

The previous span is the newest one on disk before the window's newest span (whether or not
it is inside the training window): the question is "did this week's data change more than
weeks usually do?", not "does the window look like last week's window?".
"""

from __future__ import annotations

import json
import logging
import os

from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.drift_gate import drift, spec
from components.example_gen.driver import SPANS_PROPERTY, available_spans

log = logging.getLogger(__name__)


class DriftError(RuntimeError):
    """The newest span drifted from the previous one beyond the schema's thresholds."""


def drift_message(newest: int, previous: int, drifted: list[drift.Distance]) -> str:
    """The error people read: which features drifted, by how much, and how to override."""
    lines = "\n  ".join(d.describe() for d in drifted)
    return (
        f"span {newest} drifted from span {previous} beyond the schema's thresholds in "
        f"{len(drifted)} feature{'s' if len(drifted) > 1 else ''}:\n  {lines}\n"
        "The run stops before Transform and nothing is pushed. If the change is real and "
        "expected, re-run with --accept-drift (the override is recorded in ML Metadata)."
    )


class Executor(base_executor.BaseExecutor):
    """Measures drift; raises `DriftError` unless it is within thresholds or accepted."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
        schema_artifact = artifact_utils.get_single_instance(input_dict[spec.SCHEMA_KEY])
        report = artifact_utils.get_single_instance(output_dict[spec.DRIFT_KEY])
        data_root = exec_properties[spec.DATA_ROOT_KEY]
        pattern = exec_properties[spec.SPAN_PATTERN_KEY]
        accept = bool(exec_properties[spec.ACCEPT_DRIFT_KEY])
        min_rows = int(exec_properties[spec.MIN_SPAN_ROWS_KEY])

        spans = examples.get_string_custom_property(SPANS_PROPERTY)
        if not spans:
            raise ValueError(
                f"the Examples artifact {examples.uri} carries no '{SPANS_PROPERTY}' property, so the "
                "newest span is unknown: ExampleGen sets it (in its driver locally, in its executor on "
                "Kubeflow); an orchestrator that drops an artifact's metadata between tasks loses it"
            )
        newest = int(spans.split(",")[-1])
        earlier = [s for s in available_spans(data_root, pattern) if s < newest]
        result = {
            "newest_span": newest,
            "previous_span": None,
            "distances": [],
            "drifted": [],
            "accepted": accept,
        }
        drifted: list[drift.Distance] = []
        if earlier:
            previous = earlier[-1]
            schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema_artifact.uri))
            statistics = {}
            for span in (newest, previous):
                statistics[span] = drift.span_statistics(drift.span_files(data_root, pattern, span))
                rows = statistics[span].datasets[0].num_examples
                if rows < min_rows:
                    raise DriftError(
                        f"span {span} has {rows} rows, fewer than the {min_rows} a drift comparison needs "
                        f"({spec.MIN_SPAN_ROWS_KEY}): a week this thin cannot be told from a drifted one; "
                        "the run stops before Transform and nothing is pushed"
                    )
            distances = drift.distances(statistics[newest], statistics[previous], schema)
            if not distances:
                raise DriftError(
                    f"span {newest} vs {previous}: 0 features compared (the schema's drift comparators "
                    "matched nothing in these statistics); a comparison of nothing passes nothing"
                )
            drifted = [d for d in distances if d.drifted]
            result.update(
                previous_span=previous,
                distances=[vars(d) for d in distances],
                drifted=[d.feature for d in drifted],
            )
            summary = (
                "; ".join(d.describe() for d in drifted)
                if drifted
                else f"span {newest} vs {previous}: {len(distances)} features within thresholds"
            )
        else:
            summary = f"span {newest} is the first: nothing to compare with"
        fileio.makedirs(report.uri)
        with fileio.open(os.path.join(report.uri, spec.DRIFT_FILE_NAME), "w") as handle:
            json.dump(result, handle, indent=2, sort_keys=True)
        report.set_int_custom_property(spec.DRIFT_DETECTED_PROPERTY, int(bool(drifted)))
        report.set_int_custom_property(spec.DRIFT_ACCEPTED_PROPERTY, int(bool(drifted) and accept))
        report.set_string_custom_property(spec.DRIFT_SUMMARY_PROPERTY, summary)
        report.set_string_custom_property(
            spec.COMPARED_SPANS_PROPERTY, f"{earlier[-1]},{newest}" if earlier else str(newest)
        )
        if drifted and not accept:
            raise DriftError(drift_message(newest, earlier[-1], drifted))
        if drifted:
            log.warning("DriftGate: drift ACCEPTED by --accept-drift: %s", summary)
        else:
            log.info("DriftGate: %s", summary)
