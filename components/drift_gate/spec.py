"""Keys and spec of the DriftGate component."""

from tfx.types import component_spec, standard_artifacts

EXAMPLES_KEY = "examples"
SCHEMA_KEY = "schema"
DRIFT_KEY = "drift"
DATA_ROOT_KEY = "data_root"
SPAN_PATTERN_KEY = "span_pattern"
ACCEPT_DRIFT_KEY = "accept_drift"
MIN_SPAN_ROWS_KEY = "min_span_rows"
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
        MIN_SPAN_ROWS_KEY: component_spec.ExecutionParameter(type=int),
    }
    INPUTS = {
        EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
        SCHEMA_KEY: component_spec.ChannelParameter(type=standard_artifacts.Schema),
    }
    OUTPUTS = {DRIFT_KEY: component_spec.ChannelParameter(type=standard_artifacts.ExampleAnomalies)}
