"""Keys of the resolver nodes, the ModelBlessing properties they read, the PushedModelResolver spec.

`PushedModelResolver` is the container task that replaces the resolver nodes where those
cannot run (open-source Kubeflow Pipelines).
"""

from tfx.types import component_spec, standard_artifacts

from components.shared import MODEL_FOUND_PROPERTY

MODEL_KEY = "model"
MODEL_BLESSING_KEY = "model_blessing"
CANDIDATE_KEY = "candidate"
# Custom properties the Evaluator sets on ModelBlessing artifacts.
BLESSED_PROPERTY = "blessed"
CURRENT_MODEL_ID_PROPERTY = "current_model_id"

# PushedModelResolver: parameters and the custom properties of its `model` output.
SERVING_DIR_KEY = "serving_dir"
FOUND_PROPERTY = MODEL_FOUND_PROPERTY  # 1: the output holds a pushed model; 0: none qualified.
PUSHED_VERSION_PROPERTY = "pushed_version"
SOURCE_MODEL_URI_PROPERTY = "source_model_uri"
REASON_PROPERTY = "reason"


class PushedModelResolverSpec(component_spec.ComponentSpec):
    """The newest pushed model other than the candidate, copied into a Model artifact."""

    PARAMETERS = {SERVING_DIR_KEY: component_spec.ExecutionParameter(type=str)}
    INPUTS = {
        CANDIDATE_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model)}
