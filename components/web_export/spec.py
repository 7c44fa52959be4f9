"""Keys, artifact type and spec of the WebExport component."""

from tfx.types import component_spec, standard_artifacts

from components.shared import WebModel

MODEL_KEY = "model"
EXAMPLES_KEY = "examples"
MODEL_BLESSING_KEY = "model_blessing"
INFRA_BLESSING_KEY = "infra_blessing"
WEB_MODEL_KEY = "web_model"
SPLIT_KEY = "split"
MAX_TRIPS_KEY = "max_trips"
SEED_KEY = "seed"
MAX_DIFFERENCE_KEY = "max_difference"
BACKENDS_KEY = "backends"
# Files in the WebModel artifact's folder, beside the converter's model.json and shards.
MODEL_JSON = "model.json"
VERDICT_FILE_NAME = "web_verdict.json"
METADATA_FILE_NAME = "metadata.json"
ENCODER_FILE_NAME = "encode.js"
# Custom properties of the WebModel artifact: the Pusher pushes it only when BLESSED is 1.
BLESSED_PROPERTY = "blessed"
VERDICT_PROPERTY = "web_verdict"
BYTES_PROPERTY = "bytes"
DEFAULT_SPLIT = "eval"
# The web gate's replay: the whole eval split up to this many trips, else a seeded sample of
# this size (docs/web.md says why that suffices).
DEFAULT_MAX_TRIPS = 8192
DEFAULT_BACKENDS = "cpu,wasm,webgl"
# Largest accepted |TF.js - SavedModel| per trip (float32 rounding, op order).
DEFAULT_MAX_DIFFERENCE = 1e-5


class WebExportSpec(component_spec.ComponentSpec):
    """The Trainer's model and ExampleGen's examples (and the blessings, optional) in; a WebModel out."""

    PARAMETERS = {
        SPLIT_KEY: component_spec.ExecutionParameter(type=str),
        MAX_TRIPS_KEY: component_spec.ExecutionParameter(type=int),
        SEED_KEY: component_spec.ExecutionParameter(type=int),
        MAX_DIFFERENCE_KEY: component_spec.ExecutionParameter(type=float),
        BACKENDS_KEY: component_spec.ExecutionParameter(type=str),
    }
    INPUTS = {
        MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model),
        EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
        # The Evaluator's and the serving gate's verdicts: a model neither will let through is
        # not pushed, so the web gate does not spend a browser run on it.
        MODEL_BLESSING_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.ModelBlessing, optional=True
        ),
        INFRA_BLESSING_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.InfraBlessing, optional=True
        ),
    }
    OUTPUTS = {WEB_MODEL_KEY: component_spec.ChannelParameter(type=WebModel)}
