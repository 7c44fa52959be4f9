"""Keys and spec of the DriftGate component."""

from tfx.types import component_spec, standard_artifacts

EXAMPLES_KEY = "examples"
SCHEMA_KEY = "schema"
DRIFT_KEY = "drift"
DATA_ROOT_KEY = "data_root"
SPAN_PATTERN_KEY = "span_pattern"
ACCEPT_DRIFT_KEY = "accept_drift"
MIN_SPAN_ROWS_KEY = "min_span_rows"
# Fewer rows than this in either compared span stop the run: a random sample of a real,
# undrifted week crosses some threshold in 33 of 40 samples of 200 rows, 17/40 of 300, 6/40 of
# 500 and 0/40 of 800 or 1,200 (`python benchmarks/drift_variation.py --min-rows --samples 40`),
# so below 800 rows a comparison cannot tell a thin week from a drifted one. The embedded
# spans hold about 1,875 rows.
DEFAULT_MIN_SPAN_ROWS = 800
# Written into the output artifact's folder: every measured distance and the verdict.
DRIFT_FILE_NAME = "drift.json"
# Custom properties of the output artifact (what `runs` and reports read from ML Metadata).
DRIFT_DETECTED_PROPERTY = "drift_detected"
DRIFT_ACCEPTED_PROPERTY = "drift_accepted"
DRIFT_SUMMARY_PROPERTY = "drift_summary"
COMPARED_SPANS_PROPERTY = "compared_spans"


class DriftGateSpec(component_spec.ComponentSpec):
    """Examples (for their span window) and the schema (its drift comparators) in; a drift report out."""

    PARAMETERS = {
        DATA_ROOT_KEY: component_spec.ExecutionParameter(type=str),
        SPAN_PATTERN_KEY: component_spec.ExecutionParameter(type=str),
        ACCEPT_DRIFT_KEY: component_spec.ExecutionParameter(type=int),
        MIN_SPAN_ROWS_KEY: component_spec.ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
        SCHEMA_KEY: component_spec.ChannelParameter(type=standard_artifacts.Schema),
    }
    OUTPUTS = {DRIFT_KEY: component_spec.ChannelParameter(type=standard_artifacts.ExampleAnomalies)}
