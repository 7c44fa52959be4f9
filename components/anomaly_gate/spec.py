"""Keys and spec of the AnomalyGate component."""

from tfx.types import component_spec, standard_artifacts

ANOMALIES_KEY = "anomalies"
# Written by ExampleValidator into each split folder of its ExampleAnomalies artifact.
ANOMALIES_FILE_NAME = "SchemaDiff.pb"


class AnomalyGateSpec(component_spec.ComponentSpec):
    """One input, the validator's anomalies; no output: the gate either passes or fails the run."""

    PARAMETERS = {}
    INPUTS = {ANOMALIES_KEY: component_spec.ChannelParameter(type=standard_artifacts.ExampleAnomalies)}
    OUTPUTS = {}
