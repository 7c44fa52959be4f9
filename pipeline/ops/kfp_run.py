"""`kfp-run`: run a compiled KFP pipeline spec on this machine as KFP 2.x's driver and launcher do.

No Kubernetes here, so each task is what its pod would run: a separate process in this
checkout (the image's WORKDIR holds the same project), `python` this interpreter. Followed from
kubeflow/pipelines, `backend/src/v2`:
- `compiler/visitor.go`, `compiler/argocompiler/dag.go`: what is refused (`kfp_spec.refusals`);
  a task runs only when every dependency succeeded (`depends: <task>.Succeeded`), so a task
  whose condition is false is skipped, and so are its dependents.
- `driver/root_dag.go`, `metadata/client.go` (`GetPipeline`, `GenerateOutputURI`): the run's
  root is `<pipeline root>/<pipeline name>/<run id>`; `driver/driver.go` (`provisionOutputs`):
  each output artifact's URI is `<run root>/<task>/<uuid>/<output key>` (the uuid salt since KFP
  2.4; before that `<run root>/<task>/<output key>`), named by its key, typed by the component's
  output definition. Output parameter files (KFP: `/tmp/kfp/outputs/<name>`) and the executor
  output file (KFP: next to the task root's mount) are per-task files under the run folder.
- `driver/resolve.go` (`resolveInputs`, `resolveInputParameter`): component input parameters
  from the root's (spec default, overridden), constants (with `{{$.pipeline_job_uuid}}`-style
  values), upstream output parameters and artifacts; then every value is checked against the
  component's type, a non-string becoming text for a STRING input. `driver/container.go`:
  the condition is evaluated over those inputs.
- `component/launcher_v2.go`: input parameter defaults added (`addDefaultParams`), placeholders
  (`kfp_spec.substitute`), output folders made, the command run; then the executor output file
  (absent: empty) is read. Each output artifact is the one the driver made with the first one
  the ExecutorOutput reports for its key merged on (`mergeRuntimeArtifacts`: a non-empty URI
  replaces the driver's, metadata keys are added or overwritten). Output parameters: the
  ExecutorOutput's `parameterValues` first, else the parameter's output file typed by its
  definition (`collectOutputParameters`; a missing file fails the task).
- `component/importer_launcher.go`: an importer runs no process: its one output is an artifact
  of the importer's type and metadata at `artifactUri` (a constant, or a runtime parameter
  through the task's input). KFP would reuse a matching MLMD artifact unless `reimport`.
Caching: KFP's driver consults its cache when a task's `cachingOptions.enableCache` is set;
kfp-run has no ML Metadata and always executes. Downstream tasks get the producer's runtime
artifact itself (KFP's goes through ML Metadata, renamed to its artifact id).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline.ops import kfp_conditions, kfp_spec
from pipeline.ops.kfp_spec import KfpSpecError, load_spec, refusals  # noqa: F401  (the module's API)

SUCCEEDED, FAILED, SKIPPED = "succeeded", "failed", "skipped"
LOG_TAIL_LINES = 40
SUMMARY = "kfp-run.json"
OUTPUT_METADATA = "output_metadata.json"  # KFP's name for the executor output file


@dataclasses.dataclass
class TaskResult:
    """One task's end: state, time, process, outputs (artifacts as runtime artifact dicts)."""

    name: str
    state: str
    seconds: float = 0.0
    pid: int | None = None
    artifacts: dict[str, list[dict]] = dataclasses.field(default_factory=dict)
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    log: str | None = None
    message: str = ""


@dataclasses.dataclass
class KfpRunResult:
    """The run: its id, its root (`<pipeline root>/<name>/<run id>`), the tasks that ended."""

    pipeline_name: str
    run_id: str
    pipeline_root: str
    tasks: list[TaskResult]
    summary: Path | None = None
    seconds: float = 0.0

    @property
    def failed_task(self) -> str | None:
        return next((t.name for t in self.tasks if t.state == FAILED), None)

    @property
    def ok(self) -> bool:
        return self.failed_task is None

    def task(self, name: str) -> TaskResult:
        return next(t for t in self.tasks if t.name == name)


@dataclasses.dataclass
class KfpPlan:
    """What a run would do, checked before any task runs: the rewritten spec and its values."""

    spec: dict
    order: list[str]
    root_values: dict[str, Any]
    pipeline_name: str
    pipeline_root: str
    run_id: str


def plan_run(spec: dict, *, params=None, rewrites=(), pipeline_root=None, run_id=None) -> KfpPlan:
    """Everything `run_spec` checks before running a task (`kfp-run --check`).

    Raises:
        KfpSpecError: a refusal (all of them, one a line), a bad parameter or reference.
    """
    problems = refusals(spec)
    if problems:
        raise KfpSpecError("\n".join(problems))
    spec = kfp_spec.rewrite(spec, rewrites)
    params = {k: kfp_spec.rewrite(v, rewrites) for k, v in (params or {}).items()}
    root_values = kfp_spec.root_parameters(spec, params)
    order = kfp_spec.task_order(spec)
    kfp_spec.check_references(spec)
    root = kfp_spec.rewrite(pipeline_root, rewrites) if pipeline_root else spec.get("defaultPipelineRoot")
    if not root:
        raise KfpSpecError("the spec has no defaultPipelineRoot: pass --pipeline-root")
    if "://" not in root:
        root = str(Path(root).resolve())
    name, run_id = spec["pipelineInfo"]["name"], run_id or str(uuid.uuid4())
    run_root = kfp_spec.generate_output_uri(root, [name, run_id], preserve_query=True)
    return KfpPlan(spec, order, root_values, name, run_root, run_id)


def run_spec(
    spec: dict,
    *,
    run_root,
    params: dict | None = None,
    rewrites=(),
    run_id: str | None = None,
    env: dict | None = None,
    log=print,
    pipeline_root: str | None = None,
) -> KfpRunResult:
    """Run the spec's root DAG task by task, each container task in its own process.

    Args:
        spec: the PipelineSpec (`load_spec`).
        run_root: local folder for `logs/<task>.log`, per-task scratch and `kfp-run.json`.
        params: runtime parameters by name (text is typed by the spec's `parameterType`).
        rewrites: (FROM, TO) pairs applied to every string in the spec, the pipeline root
            and the parameters, e.g. `("gs://bucket/", "/tmp/bucket/")`.
        run_id: the run's id (default a fresh uuid), part of every output URI.
        env: variables added to `os.environ` (and the executor's own `env`) for every task.
        log: called with each line to show (one per task as it ends).
        pipeline_root: instead of the spec's `defaultPipelineRoot`.

    Returns:
        The run; `failed_task` names the task that failed (the run stops there).

    Raises:
        KfpSpecError: the spec is refused or the parameters are wrong; nothing ran.
    """
    plan = plan_run(spec, params=params, rewrites=rewrites, pipeline_root=pipeline_root, run_id=run_id)
    run_root = Path(run_root).resolve()
    (run_root / "logs").mkdir(parents=True, exist_ok=True)
    result = KfpRunResult(plan.pipeline_name, plan.run_id, plan.pipeline_root, [], run_root / SUMMARY)
    started, created = time.monotonic(), datetime.datetime.now(datetime.timezone.utc).isoformat()
    for name in plan.order:
        task = plan.spec["root"]["dag"]["tasks"][name]
        skipped = [u for u in kfp_spec.upstream(task) if result.task(u).state == SKIPPED]
        if skipped:
            outcome = TaskResult(name, SKIPPED, message=f"upstream {', '.join(skipped)} skipped")
        else:
            outcome = _run_task(plan, name, result, run_root, dict(env or {}), created)
        result.tasks.append(outcome)
        result.seconds = time.monotonic() - started
        _write_summary(result)
        if outcome.state == SKIPPED:
            log(f"task {name} skipped ({outcome.message})")
        elif outcome.state == SUCCEEDED:
            log(f"task {name} succeeded in {outcome.seconds:.1f} s")
        else:
            log(f"task {name} failed in {outcome.seconds:.1f} s: {outcome.message}")
            if outcome.log:
                lines = Path(outcome.log).read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
                log(f"  last {len(lines)} lines of {outcome.log}:")
                for line in lines:
                    log(f"  | {line}")
            break
    return result


def _run_task(plan: KfpPlan, name: str, result: KfpRunResult, run_root: Path, env: dict, created: str):
    task = plan.spec["root"]["dag"]["tasks"][name]
    component = plan.spec["components"][task["componentRef"]["name"]]
    executor = plan.spec["deploymentSpec"]["executors"][component["executorLabel"]]
    started = time.monotonic()
    salt = str(uuid.uuid4())
    try:
        if "importer" in executor:
            outcome = _import(plan, name, task, component, executor["importer"])
        else:
            inputs = _resolve_inputs(plan, name, task, component, result, salt, created)
            condition = task.get("triggerPolicy", {}).get("condition")
            if condition and not kfp_conditions.condition(condition, inputs):
                return TaskResult(name, SKIPPED, message="condition false")
            container = executor["container"]
            outcome = _run_container(plan, name, component, container, inputs, salt, run_root, env)
    except (KfpSpecError, OSError) as error:
        outcome = TaskResult(name, FAILED, message=str(error))
    outcome.seconds = time.monotonic() - started
    return outcome


def _resolve_inputs(plan, name, task, component, result, salt, created) -> dict:
    definitions = component.get("inputDefinitions", {}).get("parameters", {})
    values: dict[str, Any] = {}
    constants = {
        "{{$.pipeline_job_name}}": plan.run_id,
        "{{$.pipeline_job_resource_name}}": plan.run_id,
        "{{$.pipeline_job_uuid}}": plan.run_id,
        "{{$.pipeline_task_name}}": name,
        "{{$.pipeline_task_uuid}}": salt,
        "{{$.pipeline_job_create_time_utc}}": created,
        "{{$.pipeline_job_schedule_time_utc}}": created,
    }
    for key, source in task.get("inputs", {}).get("parameters", {}).items():
        if "componentInputParameter" in source:
            root_name = source["componentInputParameter"]
            if root_name not in plan.root_values:
                if definitions.get(key, {}).get("isOptional"):
                    continue
                raise KfpSpecError(f"parent DAG does not have input parameter {root_name}")
            values[key] = plan.root_values[root_name]
        elif "taskOutputParameter" in source:
            producer = source["taskOutputParameter"]
            upstream, output = producer["producerTask"], producer["outputParameterKey"]
            if output not in result.task(upstream).parameters:
                raise KfpSpecError(f"{upstream} has no output parameter {output}")
            values[key] = result.task(upstream).parameters[output]
        elif "runtimeValue" in source:
            runtime = source["runtimeValue"]
            if "constant" in runtime:
                constant = runtime["constant"]
                values[key] = constants.get(constant, constant) if isinstance(constant, str) else constant
            else:  # pre-2.0 `constantValue: {stringValue|intValue|doubleValue}`
                kind, raw = next(iter(runtime.get("constantValue", {}).items()), ("stringValue", None))
                values[key] = {"intValue": int, "doubleValue": float}.get(kind, str)(raw)
        else:
            raise KfpSpecError(f"input parameter {key}: parameter spec {source} not implemented")
    for key, definition in definitions.items():
        kind = kfp_spec.parameter_type(definition)
        if key not in values:
            if not definition.get("isOptional") and "defaultValue" not in definition:
                raise KfpSpecError(
                    f"neither value nor default value provided for non-optional parameter {key!r}"
                )
        elif kind == "STRING" and not isinstance(values[key], str):
            values[key] = kfp_spec.value_text(values[key])
        elif values[key] is None:
            raise KfpSpecError(f"got null for input parameter {key!r}")
        elif not kfp_spec.matches_type(values[key], kind):
            raise KfpSpecError(f"input parameter {key!r} type mismatch: expect {kind}, got {values[key]!r}")
    artifacts = {}
    for key, source in task.get("inputs", {}).get("artifacts", {}).items():
        upstream, output = (
            source["taskOutputArtifact"]["producerTask"],
            source["taskOutputArtifact"]["outputArtifactKey"],
        )
        listed = result.task(upstream).artifacts.get(output)
        if not listed:
            raise KfpSpecError(f"{upstream} has no output artifact {output}")
        artifacts[key] = {"artifacts": listed}
    return {"parameterValues": values, "artifacts": artifacts}


def _provision_outputs(plan: KfpPlan, name: str, component: dict, salt: str, scratch: Path) -> dict:
    task_root = kfp_spec.generate_output_uri(plan.pipeline_root, [name, salt])
    definitions = component.get("outputDefinitions", {})
    artifacts = {}
    for key, definition in definitions.get("artifacts", {}).items():
        artifact = {"name": key, "type": definition.get("artifactType", {})}
        artifact["uri"] = kfp_spec.generate_output_uri(task_root, [key])
        if definition.get("metadata"):
            artifact["metadata"] = definition["metadata"]
        artifacts[key] = {"artifacts": [artifact]}
    parameters = {
        key: {"outputFile": str(scratch / "outputs" / key)} for key in definitions.get("parameters", {})
    }
    return {"artifacts": artifacts, "parameters": parameters, "outputFile": str(scratch / OUTPUT_METADATA)}


def _run_container(plan, name, component, container, inputs, salt, run_root: Path, env: dict) -> TaskResult:
    scratch = run_root / "tasks" / name.replace("/", "_")
    shutil.rmtree(scratch, ignore_errors=True)
    executor_input = {"inputs": inputs, "outputs": _provision_outputs(plan, name, component, salt, scratch)}
    with_defaults = json.loads(json.dumps(executor_input))
    for key, definition in component.get("inputDefinitions", {}).get("parameters", {}).items():
        if "defaultValue" in definition:
            with_defaults["inputs"]["parameterValues"].setdefault(key, definition["defaultValue"])
    try:
        message = json_format.ParseDict(with_defaults, pipeline_spec_pb2.ExecutorInput())
    except json_format.ParseError as error:
        raise KfpSpecError(f"the ExecutorInput is not valid: {error}") from error
    as_json = json.dumps(json_format.MessageToDict(message), separators=(",", ":"))
    command, args = container.get("command", []), container.get("args", [])
    argv = kfp_spec.substitute(command, args, with_defaults, as_json)
    outputs = executor_input["outputs"]
    for parameter in outputs["parameters"].values():
        Path(parameter["outputFile"]).parent.mkdir(parents=True, exist_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    for listed in outputs["artifacts"].values():
        if "://" not in listed["artifacts"][0]["uri"]:  # a bucket's folders are the task's to make
            Path(listed["artifacts"][0]["uri"]).parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **{e["name"]: e.get("value", "") for e in container.get("env", [])}, **env}
    # `python` in the command is this interpreter, as the image's would be its own.
    full_env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), full_env.get("PATH", "")])
    log_path = run_root / "logs" / f"{name.replace('/', '_')}.log"
    with open(log_path, "w") as log_file:
        try:
            process = subprocess.Popen(
                argv, env=full_env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        except OSError as error:
            return TaskResult(name, FAILED, log=str(log_path), message=f"cannot start {argv[0]!r}: {error}")
        code = process.wait()
    outcome = TaskResult(name, FAILED, pid=process.pid, log=str(log_path))
    if code != 0:
        outcome.message = f"exit status {code}"
        return outcome
    try:
        outcome.artifacts, outcome.parameters = _collect_outputs(component, outputs)
    except KfpSpecError as error:
        outcome.message = str(error)
        return outcome
    outcome.state = SUCCEEDED
    return outcome


def _collect_outputs(component: dict, outputs: dict) -> tuple[dict, dict]:
    path = Path(outputs["outputFile"])
    reported: dict = {}
    if path.is_file():
        try:
            message = json_format.Parse(
                path.read_text(), pipeline_spec_pb2.ExecutorOutput(), ignore_unknown_fields=True
            )
        except json_format.ParseError as error:
            raise KfpSpecError(f"failed to unmarshall ExecutorOutput in file {path}: {error}") from error
        reported = json_format.MessageToDict(message)
    artifacts = {}
    for key, listed in outputs["artifacts"].items():
        artifact = json.loads(json.dumps(listed["artifacts"][0]))
        given = reported.get("artifacts", {}).get(key, {}).get("artifacts", [])
        if given:
            artifact["uri"] = given[0].get("uri") or artifact["uri"]
            artifact["metadata"] = {**artifact.get("metadata", {}), **given[0].get("metadata", {})}
        artifacts[key] = [artifact]
    parameters = dict(reported.get("parameterValues", {}))
    definitions = component.get("outputDefinitions", {}).get("parameters", {})
    for key, parameter in outputs["parameters"].items():
        if key in parameters:
            continue
        kind = kfp_spec.parameter_type(definitions[key])
        where = f"failed to read output parameter name={key!r} type={kind!r} path={parameter['outputFile']!r}"
        try:
            parameters[key] = kfp_spec.text_to_value(Path(parameter["outputFile"]).read_text(), kind)
        except (OSError, KfpSpecError) as error:
            raise KfpSpecError(f"{where}: {error}") from error
    return artifacts, parameters


def _import(plan: KfpPlan, name: str, task: dict, component: dict, importer: dict) -> TaskResult:
    source = importer.get("artifactUri", {})
    if "runtimeParameter" in source:
        parameter = source["runtimeParameter"]
        source = task.get("inputs", {}).get("parameters", {}).get(parameter, {})
        root_name = source.get("componentInputParameter")
        if root_name is None:
            raise KfpSpecError(f"cannot find parameter {parameter} in task input to fetch artifact uri")
        uri = plan.root_values.get(root_name)
    else:
        uri = source.get("constant", source.get("constantValue", {}).get("stringValue"))
    if not uri or not isinstance(uri, str):
        raise KfpSpecError(f"importer {name}: empty artifact URI")
    keys = list(component.get("outputDefinitions", {}).get("artifacts", {}))
    if len(keys) != 1:
        raise KfpSpecError("failed to extract output artifact name from componentOutputSpec")
    artifact = {"name": keys[0], "type": importer.get("typeSchema", {}), "uri": uri}
    artifact["metadata"] = dict(importer.get("metadata", {}))
    return TaskResult(name, SUCCEEDED, artifacts={keys[0]: [artifact]})


def _write_summary(result: KfpRunResult) -> None:
    summary = {
        "pipeline": result.pipeline_name,
        "run_id": result.run_id,
        "pipeline_root": result.pipeline_root,
        "state": SUCCEEDED if result.ok else FAILED,
        "failed_task": result.failed_task,
        "seconds": round(result.seconds, 3),
        "tasks": [
            {
                "name": t.name,
                "state": t.state,
                "seconds": round(t.seconds, 3),
                "pid": t.pid,
                "log": t.log,
                "message": t.message,
                "artifacts": {
                    k: [{"uri": a["uri"], "metadata": a.get("metadata", {})} for a in listed]
                    for k, listed in t.artifacts.items()
                },
                "parameters": t.parameters,
            }
            for t in result.tasks
        ],
    }
    result.summary.write_text(json.dumps(summary, indent=2) + "\n")
