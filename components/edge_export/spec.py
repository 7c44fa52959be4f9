"""Keys, artifact type and spec of the EdgeExport component."""

from tfx.types import component_spec, standard_artifacts

from components.shared import EdgeModel

MODEL_KEY = "model"
EXAMPLES_KEY = "examples"
SERVING_BLESSING_KEY = "serving_blessing"
EDGE_MODEL_KEY = "edge_model"
CALIBRATION_SPLIT_KEY = "calibration_split"
SPLIT_KEY = "split"
REPRESENTATIVE_TRIPS_KEY = "representative_trips"
SEED_KEY = "seed"
ACCURACY_TOLERANCE_KEY = "accuracy_tolerance"
AUC_TOLERANCE_KEY = "auc_tolerance"
# Files in the EdgeModel artifact's folder.
MODEL_FILE_NAME = "model.tflite"
VERDICT_FILE_NAME = "edge_verdict.json"
METADATA_FILE_NAME = "metadata.json"
# Custom properties of the EdgeModel artifact: the Pusher pushes it only when BLESSED is 1.
BLESSED_PROPERTY = "blessed"
VERDICT_PROPERTY = "edge_verdict"
BYTES_PROPERTY = "bytes"
DEFAULT_SPLIT = "eval"
DEFAULT_CALIBRATION_SPLIT = "train"


class EdgeExportSpec(component_spec.ComponentSpec):
    """The Trainer's model and ExampleGen's examples in; an EdgeModel out.

    `serving_blessing` (optional): the ServingGate's output, whose saved `serving_raw`
    answers on the same split are the SavedModel side of the agreement check (without it
    the executor loads the SavedModel and computes them).
    """

    PARAMETERS = {
        CALIBRATION_SPLIT_KEY: component_spec.ExecutionParameter(type=str),
        SPLIT_KEY: component_spec.ExecutionParameter(type=str),
        REPRESENTATIVE_TRIPS_KEY: component_spec.ExecutionParameter(type=int),
        SEED_KEY: component_spec.ExecutionParameter(type=int),
        ACCURACY_TOLERANCE_KEY: component_spec.ExecutionParameter(type=float),
        AUC_TOLERANCE_KEY: component_spec.ExecutionParameter(type=float),
    }
    INPUTS = {
        MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model),
        EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
        SERVING_BLESSING_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.InfraBlessing, optional=True
        ),
    }
    OUTPUTS = {EDGE_MODEL_KEY: component_spec.ChannelParameter(type=EdgeModel)}
