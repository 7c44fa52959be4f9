"""AtomicPusher spec: TFX's PusherSpec plus optional `edge_model` and `web_model` inputs.

The edge model (components.edge_export) and the web model (components.web_export) are each
pushed beside the SavedModel's version only when their gate blessed them; the SavedModel's
push never depends on them.
"""

from tfx.types import component_spec, standard_component_specs

from components.shared import EdgeModel, WebModel

EDGE_MODEL_KEY = "edge_model"
# The parallel tree beside the integer versions: `<base>/edge/<version>/`. TF Serving loads
# integer-named folders only, and `existing_versions` ignores the name too.
EDGE_FOLDER = "edge"
# Custom properties of the PushedModel artifact: `<folder>_pushed`, `_destination`, `_reason`.
EDGE_PUSHED_PROPERTY = "edge_pushed"
EDGE_DESTINATION_PROPERTY = "edge_destination"
EDGE_REASON_PROPERTY = "edge_reason"
WEB_MODEL_KEY = "web_model"
WEB_FOLDER = "web"
WEB_PUSHED_PROPERTY = "web_pushed"
WEB_DESTINATION_PROPERTY = "web_destination"
WEB_REASON_PROPERTY = "web_reason"


class AtomicPusherSpec(standard_component_specs.PusherSpec):
    """PusherSpec's inputs, parameters and output, and the edge and web models."""

    INPUTS = {
        **standard_component_specs.PusherSpec.INPUTS,
        EDGE_MODEL_KEY: component_spec.ChannelParameter(type=EdgeModel, optional=True),
        WEB_MODEL_KEY: component_spec.ChannelParameter(type=WebModel, optional=True),
    }
