"""ExampleGen's driver on Kubeflow Pipelines (v2): the span window, as the local driver does.

KubeflowV2DagRunner compiles every FileBasedExampleGen with TFX's stock driver as the task's
pre-cache-check hook (`tfx.orchestration.kubeflow.v2.file_based_example_gen.driver`). That
driver resolves exactly one span, so a rolling window of several would fail there. The
Kubeflow runner points the hook of our ExampleGen at this module instead
(`python -m components.example_gen.kfp_driver`, same arguments): it resolves the window with
the same `resolve_window()` as the local `SpanWindowDriver` and writes the ExecutorOutput the
KFP backend reads (span, fingerprint, per-window input config, `spans`), so cache keys and
the artifacts' `span`/`spans` properties match a local run.
"""

from __future__ import annotations

import argparse
import os
import sys

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.components.example_gen import driver as tfx_driver
from tfx.components.example_gen import utils
from tfx.dsl.io import fileio
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils
from tfx.types import artifact_utils, standard_component_specs

from components.example_gen.driver import SPANS_PROPERTY, resolve_window

# What the compiled pipeline runs as the ExampleGen task's pre-cache-check command.
DRIVER_COMMAND = ["python", "-m", "components.example_gen.kfp_driver"]


def run_driver(
    executor_input: pipeline_spec_pb2.ExecutorInput,
    component_inputs_spec: pipeline_spec_pb2.ComponentInputsSpec | None = None,
) -> pipeline_spec_pb2.ExecutorOutput:
    """Resolve the window for one ExampleGen task; write and return its ExecutorOutput."""
    exec_properties = kubeflow_v2_entrypoint_utils.parse_execution_properties(
        executor_input.inputs.parameter_values,
        executor_input.inputs.parameters,
        component_inputs_spec,
    )
    name_from_id: dict = {}
    outputs = kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict(
        executor_input.outputs.artifacts, name_from_id
    )
    if standard_component_specs.EXAMPLES_KEY not in outputs:
        raise ValueError("the ExampleGen task has no 'examples' output artifact")
    resolved = resolve_window(exec_properties)

    examples = artifact_utils.get_single_instance(outputs[standard_component_specs.EXAMPLES_KEY])
    tfx_driver.update_output_artifact(exec_properties=resolved, output_artifact=examples.mlmd_artifact)
    examples.set_string_custom_property(SPANS_PROPERTY, resolved[SPANS_PROPERTY])

    output = pipeline_spec_pb2.ExecutorOutput()
    values = output.parameter_values
    values[utils.SPAN_PROPERTY_NAME].number_value = resolved[utils.SPAN_PROPERTY_NAME]
    values[utils.FINGERPRINT_PROPERTY_NAME].string_value = resolved[utils.FINGERPRINT_PROPERTY_NAME]
    values[standard_component_specs.INPUT_CONFIG_KEY].string_value = resolved[
        standard_component_specs.INPUT_CONFIG_KEY
    ]
    values[SPANS_PROPERTY].string_value = resolved[SPANS_PROPERTY]
    output.artifacts[standard_component_specs.EXAMPLES_KEY].artifacts.add().CopyFrom(
        kubeflow_v2_entrypoint_utils.to_runtime_artifact(examples, name_from_id)
    )

    output_file = executor_input.outputs.output_file
    fileio.makedirs(os.path.dirname(output_file))
    with fileio.open(output_file, "wb") as f:
        f.write(json_format.MessageToJson(output, sort_keys=True))
    return output


def main(argv: list[str] | None = None) -> int:
    """Entry point with the stock driver's flags; Beam flags after them are ignored."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json_serialized_invocation_args", required=True)
    parser.add_argument("--json_serialized_inputs_spec_args")
    args, _ = parser.parse_known_args(argv)
    executor_input = pipeline_spec_pb2.ExecutorInput()
    json_format.Parse(args.json_serialized_invocation_args, executor_input, ignore_unknown_fields=True)
    inputs_spec = None
    if args.json_serialized_inputs_spec_args:
        inputs_spec = pipeline_spec_pb2.ComponentInputsSpec()
        json_format.Parse(args.json_serialized_inputs_spec_args, inputs_spec, ignore_unknown_fields=True)
    run_driver(executor_input, inputs_spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
