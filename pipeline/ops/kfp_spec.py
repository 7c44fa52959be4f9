"""The compiled KFP pipeline spec as `kfp-run` reads it: loading, refusals, values, placeholders.

What open-source Kubeflow Pipelines 2.x does, read from kubeflow/pipelines (`backend/src/v2`):
- `compiler/visitor.go`, `compiler/argocompiler/dag.go`: the backend compiler accepts container
  and importer executors only (`executor(label=...): non-container and non-importer executor not
  implemented`), no condition on an importer task, no artifact iterator; `refusals` quotes them.
- `api/v2alpha1/pipeline_spec.proto` has `container.lifecycle.preCacheCheck`, but nothing in the
  backend runs it: a spec with the hook is refused, since the hook would silently not run.
- `metadata/converter.go` (`TextToPbValue`, `PbValueToText`): how parameter text becomes a
  typed value and back; `text_to_value`/`value_text` do the same.
- `driver/util.go` (`resolveContainerArgs`): the driver resolves `{"IfPresent": ...}` clauses and
  `{{$.inputs.parameters['x']}}` in command and args first (a missing parameter is an error);
  `component/launcher_v2.go` (`compileCmdAndArgs`, `getPlaceholders`) then replaces `{{$}}` with
  the ExecutorInput as JSON everywhere, and every other placeholder in all but the first word.
  `{{$.inputs/outputs.artifacts['x'].path}}` is `LocalPathForURI` (gs://b/k -> /gcs/b/k); a
  local folder has no such mount here, so its path is the URI itself (another scheme: an
  output's `.path` is an error when a task uses it; KFP fails every such task).
- `expression/expression.go`: `triggerPolicy.condition` is CEL over the task's resolved inputs
  (`kfp_conditions.py`). `inputs.parameters['x'].string_value` (what pre-2.0 SDKs wrote) is the
  parameter as text here; KFP's own driver leaves `inputs.parameters` empty, so on a cluster
  that condition fails instead.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

# The error and how a value becomes text live with the conditions, which need both and nothing else.
from pipeline.ops.kfp_conditions import KfpSpecError, parse_condition, value_text  # noqa: F401

NOT_IMPLEMENTED = "executor(label={label}): non-container and non-importer executor not implemented"
LIFECYCLE = (
    "executor(label={label}): container.lifecycle.preCacheCheck is ignored by open-source KFP's "
    "backend (nothing in its driver or launcher runs the hook), so it would silently not run: "
    "drop the hook and do its work in the task"
)
# Legacy `type` of a parameter definition (pre-2.0 specs) -> `parameterType`.
LEGACY_TYPES = {"INT": "NUMBER_INTEGER", "DOUBLE": "NUMBER_DOUBLE", "STRING": "STRING"}
PYTHON_TYPES = {
    "STRING": str,
    "NUMBER_INTEGER": (int, float),
    "NUMBER_DOUBLE": (int, float),
    "BOOLEAN": bool,
    "LIST": list,
    "STRUCT": dict,
}
_GO_TRUE, _GO_FALSE = {"1", "t", "T", "TRUE", "true", "True"}, {"0", "f", "F", "FALSE", "false", "False"}
_INPUT_PARAMETER = re.compile(r"\{\{\$\.inputs\.parameters\['(.+?)'\]\}\}")
_MOUNTS = {"gs://": "/gcs/", "minio://": "/minio/", "s3://": "/s3/"}


def load_spec(path) -> dict:
    """The PipelineSpec of a compiled pipeline: the first YAML document, or JSON.

    A PipelineJob JSON (what TFX's runner writes by default) gives its `pipelineSpec`, with its
    `runtimeConfig`'s output directory as the default pipeline root.
    """
    path = Path(path)
    if not path.is_file():
        raise KfpSpecError(f"no compiled pipeline at {path}: run `python -m pipeline compile` first")
    text = path.read_text()
    try:
        if text.lstrip().startswith("{"):
            spec = json.loads(text)
        else:
            spec = next((d for d in yaml.safe_load_all(text) if d), None)
    except (ValueError, yaml.YAMLError) as error:
        raise KfpSpecError(f"{path} is neither YAML nor JSON: {error}") from error
    if isinstance(spec, dict) and "pipelineSpec" in spec:
        runtime = spec.get("runtimeConfig", {})
        spec = spec["pipelineSpec"]
        if runtime.get("gcsOutputDirectory"):
            spec.setdefault("defaultPipelineRoot", runtime["gcsOutputDirectory"])
    if not isinstance(spec, dict) or "root" not in spec or "pipelineInfo" not in spec:
        raise KfpSpecError(f"{path} is not a KFP pipeline spec (no pipelineInfo/root)")
    return spec


def _q(text: str) -> str:
    return json.dumps(text)  # Go's %q, as KFP's messages print names


def refusals(spec: dict) -> list[str]:
    """What KFP's backend compiler refuses in `spec` (its messages), and what `kfp-run` cannot run.

    Components are visited as KFP's `visitor.go` does: from the root DAG, tasks in sorted order.
    """
    found: list[str] = []
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    components = spec.get("components", {})
    root = spec.get("root", {})
    if "dag" not in root:
        return ["the root component has no dag"]
    for key in sorted(root["dag"].get("tasks", {})):
        task = root["dag"]["tasks"][key]
        ref = task.get("componentRef", {}).get("name", "")
        if not ref:
            found.append(f"component ref name is empty for task name={_q(key)}")
            continue
        if ref not in components:
            found.append(f"cannot find component ref name={_q(ref)}")
            continue
        prefix = f"error processing component name={_q(ref)}: "
        component, label = components[ref], components[ref].get("executorLabel", "")
        condition = task.get("triggerPolicy", {}).get("condition", "")
        if "artifactIterator" in task:
            found.append("artifact iterator not implemented yet")
        if "parameterIterator" in task:
            found.append(f"task {_q(key)}: kfp-run does not run ParallelFor (parameterIterator)")
        if task.get("triggerPolicy", {}).get("strategy") == "ALL_UPSTREAM_TASKS_COMPLETED":
            found.append(f"task {_q(key)}: kfp-run does not run exit handlers (ALL_UPSTREAM_TASKS_COMPLETED)")
        for name, parameter in task.get("inputs", {}).get("parameters", {}).items():
            if "parameterExpressionSelector" in parameter or "taskFinalStatus" in parameter:
                found.append(f"task {_q(key)}: input {_q(name)} is of a kind kfp-run does not resolve")
        if condition:
            try:
                parse_condition(condition)
            except KfpSpecError as bad:
                found.append(f"task {_q(key)}: {bad}")
        if not label:
            if "dag" in component:
                found.append(f"task {_q(key)}: component {_q(ref)} is a sub-DAG; kfp-run runs a flat root")
            else:
                found.append(prefix + f"unknown component implementation: {_q(ref)}")
            continue
        executor = executors.get(label)
        if executor is None:
            found.append(prefix + f"executor(label={_q(label)}) not found in deployment config")
        elif "container" in executor:
            if executor["container"].get("lifecycle"):
                found.append(prefix + LIFECYCLE.format(label=_q(label)))
        elif "importer" in executor:
            if condition:
                found.append("triggerPolicy.condition on importer task is not supported")
        else:
            found.append(prefix + NOT_IMPLEMENTED.format(label=_q(label)))
    return list(dict.fromkeys(found))  # a component used by two tasks is visited once


def rewrite(value: Any, rewrites) -> Any:
    """`value` with every occurrence of each FROM replaced by its TO, in every string inside it."""
    if isinstance(value, str):
        for old, new in rewrites:
            value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {key: rewrite(item, rewrites) for key, item in value.items()}
    if isinstance(value, list):
        return [rewrite(item, rewrites) for item in value]
    return value


def parameter_type(definition: dict) -> str:
    """`parameterType` of a parameter definition (legacy `type` mapped)."""
    return definition.get("parameterType") or LEGACY_TYPES.get(definition.get("type", ""), "STRING")


def text_to_value(text: str, kind: str) -> Any:
    """KFP's `TextToPbValue`: parameter text (a `--param`, an output file) typed by `kind`."""
    try:
        if kind == "STRING":
            return text
        if kind == "NUMBER_INTEGER":
            return int(text.strip())
        if kind == "NUMBER_DOUBLE":
            return float(text.strip())
        if kind == "BOOLEAN":
            if text.strip() in _GO_TRUE | _GO_FALSE:
                return text.strip() in _GO_TRUE
            raise ValueError("not a boolean")
        if kind in ("LIST", "STRUCT"):
            value = json.loads(text)
            if isinstance(value, PYTHON_TYPES[kind]):
                return value
            raise ValueError("unexpected type")
    except ValueError as error:
        raise KfpSpecError(f"{text!r} is not a valid {kind}: {error}") from error
    raise KfpSpecError(f"unknown parameter type {kind}")


def matches_type(value: Any, kind: str) -> bool:
    """Whether a JSON value has parameter type `kind` (a bool is no number)."""
    if isinstance(value, bool):
        return kind == "BOOLEAN"
    return isinstance(value, PYTHON_TYPES.get(kind, object))


def _driver_text(value: Any) -> str:
    # The driver's pbValueToString: integral numbers as integers, others as Go's %g.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(int(value)) if float(value).is_integer() else f"{value:g}"
    return value_text(value)


def local_path(uri: str) -> str | None:
    """KFP's `LocalPathForURI` (a bucket's mount in the pod); a local folder is its own path."""
    for scheme, mount in _MOUNTS.items():
        if uri.startswith(scheme):
            return mount + uri[len(scheme) :]
    return None if "://" in uri else uri


def _driver_args(words: list[str], parameters: dict) -> list[str]:
    def one(match) -> str:
        if match.group(1) not in parameters:
            raise KfpSpecError(f"parameter {_q(match.group(1))} not found in executor input")
        return _driver_text(parameters[match.group(1)])

    resolved: list[str] = []
    for word in words:
        if "$.outputs" in word:
            resolved.append(word)
        elif word.strip().startswith('{"IfPresent":'):
            try:
                clause = json.loads(word)["IfPresent"]
            except (ValueError, KeyError, TypeError) as error:
                raise KfpSpecError(f"failed to parse IfPresent JSON {word!r}: {error}") from error
            present = parameters.get(clause["InputName"]) is not None
            chosen = clause.get("Then") if present else clause.get("Else")
            chosen = [] if chosen is None else [chosen] if isinstance(chosen, str) else chosen
            resolved.extend(_INPUT_PARAMETER.sub(one, item) for item in chosen)
        else:
            resolved.append(_INPUT_PARAMETER.sub(one, word))
    return resolved


def substitute(command: list[str], args: list[str], executor_input: dict, input_json: str) -> list[str]:
    """The argv KFP's driver and launcher make of a container's command and args.

    Args:
        command: the container's `command`.
        args: the container's `args`.
        executor_input: the ExecutorInput as a JSON dict, input parameter defaults added.
        input_json: the same as the JSON text `{{$}}` stands for.

    Returns:
        The words to execute.
    """
    inputs, outputs = executor_input.get("inputs", {}), executor_input.get("outputs", {})
    words = _driver_args(command, inputs.get("parameterValues", {}))
    words += _driver_args(args, inputs.get("parameterValues", {}))
    if not words:
        raise KfpSpecError("command and arguments are empty")
    places = {}
    for name, listed in inputs.get("artifacts", {}).items():
        if listed.get("artifacts"):
            uri = listed["artifacts"][0].get("uri", "")
            places[f"{{{{$.inputs.artifacts['{name}'].uri}}}}"] = uri
            if local_path(uri) is not None:
                places[f"{{{{$.inputs.artifacts['{name}'].path}}}}"] = local_path(uri)
    for name, listed in outputs.get("artifacts", {}).items():
        uri = listed["artifacts"][0]["uri"]
        places[f"{{{{$.outputs.artifacts['{name}'].uri}}}}"] = uri
        places[f"{{{{$.outputs.artifacts['{name}'].path}}}}"] = local_path(uri)  # None: no local path
    for name, value in inputs.get("parameterValues", {}).items():
        places[f"{{{{$.inputs.parameters['{name}']}}}}"] = value_text(value)
    for name, parameter in outputs.get("parameters", {}).items():
        places[f"{{{{$.outputs.parameters['{name}'].output_file}}}}"] = parameter["outputFile"]
    argv = [words[0].replace("{{$}}", input_json)]
    for word in words[1:]:
        word = word.replace("{{$}}", input_json)
        for placeholder, replacement in places.items():
            if replacement is None and placeholder in word:
                raise KfpSpecError(f"{placeholder}: the output's URI has no local path")
            word = word.replace(placeholder, replacement or "")
        argv.append(word)
    return argv


def generate_output_uri(root: str, paths: list[str], preserve_query: bool = False) -> str:
    """KFP's `GenerateOutputURI`: `root` (its query string kept only on request) + the joined paths."""
    root, _, query = root.partition("?")
    suffix = f"?{query}" if query and preserve_query else ""
    return f"{root.rstrip('/')}/{'/'.join(p.strip('/') for p in paths)}{suffix}"


def root_parameters(spec: dict, params: dict | None = None) -> dict[str, Any]:
    """The root's input parameters: spec defaults overridden by `params` (text typed per spec)."""
    definitions = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    unknown = sorted(set(params or {}) - set(definitions))
    if unknown:
        raise KfpSpecError(f"unknown runtime parameter(s) {unknown}; the pipeline has {sorted(definitions)}")
    values = {name: d["defaultValue"] for name, d in definitions.items() if "defaultValue" in d}
    for name, raw in (params or {}).items():
        kind = parameter_type(definitions[name])
        try:
            values[name] = text_to_value(raw, kind) if isinstance(raw, str) else raw
        except KfpSpecError as error:
            raise KfpSpecError(f"runtime parameter {name}: {error}") from error
        if not matches_type(values[name], kind):
            raise KfpSpecError(f"runtime parameter {name}: {raw!r} is not a {kind}")
    missing = sorted(n for n, d in definitions.items() if n not in values and not d.get("isOptional"))
    if missing:
        raise KfpSpecError(f"runtime parameter(s) {missing} have no default; pass --param NAME=VALUE")
    return values


def upstream(task: dict) -> list[str]:
    """The tasks `task` waits for: its dependentTasks and the producers of its inputs."""
    inputs = task.get("inputs", {})
    producers = [
        spec.get(kind, {}).get("producerTask")
        for spec in [*inputs.get("parameters", {}).values(), *inputs.get("artifacts", {}).values()]
        for kind in ("taskOutputParameter", "taskOutputArtifact")
    ]
    return list(dict.fromkeys([*task.get("dependentTasks", []), *filter(None, producers)]))


def task_order(spec: dict) -> list[str]:
    """Root DAG tasks in dependency order (dependentTasks and input producers); spec order breaks ties."""
    tasks = spec["root"]["dag"].get("tasks", {})
    for name, task in tasks.items():
        for producer in upstream(task):
            if producer not in tasks:
                raise KfpSpecError(f"task {name} depends on {producer}, which is not a task of the root DAG")
    order: list[str] = []
    while len(order) < len(tasks):
        ready = [n for n, t in tasks.items() if n not in order and set(upstream(t)) <= set(order)]
        if not ready:
            raise KfpSpecError(f"dependency cycle among {sorted(set(tasks) - set(order))}")
        order.append(ready[0])
    return order


def check_references(spec: dict) -> None:
    """Every input names a root parameter or an output its producer declares."""
    definitions = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    tasks = spec["root"]["dag"].get("tasks", {})

    def outputs(producer: str, kind: str) -> dict:
        component = spec["components"][tasks[producer]["componentRef"]["name"]]
        return component.get("outputDefinitions", {}).get(kind, {})

    for name, task in tasks.items():
        for key, source in task.get("inputs", {}).get("parameters", {}).items():
            root_name = source.get("componentInputParameter")
            if root_name is not None and root_name not in definitions:
                raise KfpSpecError(f"task {name}: input {key} names no root parameter")
            producer = source.get("taskOutputParameter")
            if producer and producer["outputParameterKey"] not in outputs(
                producer["producerTask"], "parameters"
            ):
                raise KfpSpecError(f"task {name}: input {key} names no output of {producer['producerTask']}")
        for key, source in task.get("inputs", {}).get("artifacts", {}).items():
            producer = source.get("taskOutputArtifact")
            if producer is None:
                raise KfpSpecError(
                    f"task {name}: input artifact {key} comes from no task (the root has none)"
                )
            if producer["outputArtifactKey"] not in outputs(producer["producerTask"], "artifacts"):
                raise KfpSpecError(
                    f"task {name}: input artifact {key} names no output of {producer['producerTask']}"
                )
