"""AtomicPusher spec: TFX's PusherSpec plus an optional `edge_model` input.

The edge model (components.edge_export) is pushed beside the SavedModel's version only when
the edge gate blessed it; the SavedModel's push never depends on it.
"""

from tfx.types import component_spec, standard_component_specs

from components.shared import EdgeModel

EDGE_MODEL_KEY = "edge_model"
# The parallel tree beside the integer versions: `<base>/edge/<version>/`. TF Serving loads
# integer-named folders only, and `existing_versions` ignores the name too.
EDGE_FOLDER = "edge"
# Custom properties of the PushedModel artifact.
EDGE_PUSHED_PROPERTY = "edge_pushed"
EDGE_DESTINATION_PROPERTY = "edge_destination"
EDGE_REASON_PROPERTY = "edge_reason"


class AtomicPusherSpec(standard_component_specs.PusherSpec):
    """PusherSpec's inputs, parameters and output, and the edge model."""

    INPUTS = {
        **standard_component_specs.PusherSpec.INPUTS,
        EDGE_MODEL_KEY: component_spec.ChannelParameter(type=EdgeModel, optional=True),
    }
