"""Keys and spec of the ServingGate component."""

from tfx.types import component_spec, standard_artifacts

MODEL_KEY = "model"
EXAMPLES_KEY = "examples"
EVALUATION_KEY = "evaluation"
BLESSING_KEY = "blessing"
SPLIT_KEY = "split"
METRIC_TOLERANCE_KEY = "metric_tolerance"
PARITY_TOLERANCE_KEY = "parity_tolerance"
# Written into the blessing artifact's folder: every check with its figures.
VERDICT_FILE_NAME = "verdict.json"
# Also written there: the SavedModel's `serving_raw` answers on the split, in order (float64
# .npy), so the edge gate compares the edge model with them without replaying again.
RAW_ANSWERS_FILE_NAME = "serving_raw_answers.npy"
# Custom properties of the blessing artifact. TFX's Pusher reads BLESSED_PROPERTY (1 = push).
BLESSED_PROPERTY = "blessed"
VERDICT_PROPERTY = "verdict"
DEFAULT_SPLIT = "eval"


class ServingGateSpec(component_spec.ComponentSpec):
    """Model, examples to replay and the Evaluator's output in; an InfraBlessing out.

    The output is TFX's InfraBlessing type so the standard Pusher input `infra_blessing`
    takes it: the Pusher then pushes only when the Evaluator and the gate both bless.
    """

    PARAMETERS = {
        SPLIT_KEY: component_spec.ExecutionParameter(type=str),
        METRIC_TOLERANCE_KEY: component_spec.ExecutionParameter(type=float),
        PARITY_TOLERANCE_KEY: component_spec.ExecutionParameter(type=float),
    }
    INPUTS = {
        MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model),
        EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
        EVALUATION_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.ModelEvaluation, optional=True
        ),
    }
    OUTPUTS = {BLESSING_KEY: component_spec.ChannelParameter(type=standard_artifacts.InfraBlessing)}
