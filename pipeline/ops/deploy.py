"""Deploy the compiled pipeline to Kubeflow Pipelines with the `kfp` client, weekly.

`deploy()` uploads the compiled YAML (the first upload creates the pipeline, later ones add a
version named after the spec's content hash, so re-deploying the same spec adds nothing),
gets or creates the experiment, and keeps exactly one recurring run of that name in it:
KFP's 6-field cron (seconds first), `max_concurrency=1` (a slow week never overlaps the next),
no catch-up (a paused schedule resumes with the next slot, not a burst of missed weeks),
the runtime parameters given. KFP has no "update recurring run" call: a changed schedule,
version or parameter replaces the old recurring run (deleted, then created); an unchanged
one is left alone. `set_schedule_state()` pauses, resumes or deletes it.

Errors from the server (unreachable, 401/403, a rejected spec) become `DeployError`s that
say what failed and where.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import yaml

DEFAULT_EXPERIMENT = "taxi-weekly"
DEFAULT_CRON = "0 0 3 * * 1"  # Mondays 03:00:00 (KFP cron: seconds first).
RECURRING_RUN_SUFFIX = "-weekly"
PAGE_SIZE = 100
# robfig/cron fields: a value, range, list, step, `*` or `?` (day fields), or a name (MON, JAN).
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?/,\-]+$")


class DeployError(RuntimeError):
    """Deploying failed; the message says which step and what the server answered."""


class DeployUsageError(DeployError):
    """The request itself is wrong (cron, parameters, package): nothing was sent."""


@dataclasses.dataclass
class DeployResult:
    """What `deploy()` did."""

    pipeline_id: str
    version_id: str
    version_name: str
    experiment_id: str
    recurring_run_id: str
    actions: list[str]


def check_cron(cron: str) -> str:
    """KFP's cron has 6 fields, seconds first (`0 0 3 * * 1`); a 5-field one is refused."""
    fields = cron.split()
    if len(fields) != 6 or not all(_CRON_FIELD.match(f) for f in fields):
        hint = f" (for crontab's '{cron}', KFP wants '0 {cron}')" if len(fields) == 5 else ""
        raise DeployUsageError(
            f"--cron must have 6 fields, seconds first, e.g. '{DEFAULT_CRON}'; got '{cron}'{hint}"
        )
    return " ".join(fields)


def read_spec(path: Path) -> tuple[dict, str]:
    """The compiled PipelineSpec (first YAML document) and a content hash of the whole file."""
    path = Path(path)
    if not path.is_file():
        raise DeployUsageError(f"no compiled pipeline at {path}: run `python -m pipeline compile` first")
    text = path.read_text()
    try:
        documents = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as error:
        raise DeployUsageError(f"{path} is not YAML: {error}") from error
    if not documents or "pipelineInfo" not in documents[0] or "root" not in documents[0]:
        raise DeployUsageError(f"{path} is not a KFP pipeline spec (no pipelineInfo/root)")
    return documents[0], hashlib.sha256(text.encode()).hexdigest()[:12]


def parameter_values(spec: dict, overrides: dict[str, str]) -> dict:
    """The recurring run's parameters: the spec's defaults, overridden by name; values typed."""
    definitions = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    unknown = sorted(set(overrides) - set(definitions))
    if unknown:
        raise DeployUsageError(
            f"unknown runtime parameter(s) {unknown}; the pipeline has {sorted(definitions)}"
        )
    values = {name: d.get("defaultValue") for name, d in definitions.items() if "defaultValue" in d}
    for name, raw in overrides.items():
        kind = definitions[name].get("parameterType", "STRING")
        try:
            if kind == "NUMBER_INTEGER":
                values[name] = int(raw)
            elif kind == "NUMBER_DOUBLE":
                values[name] = float(raw)
            else:
                if raw.lstrip().startswith("{"):
                    json.loads(raw)  # A proto-as-JSON parameter must at least be JSON.
                values[name] = raw
        except ValueError as error:
            raise DeployUsageError(
                f"runtime parameter {name}: {raw!r} is not a valid {kind}: {error}"
            ) from error
    missing = sorted(set(definitions) - set(values))
    if missing:
        raise DeployUsageError(f"runtime parameter(s) {missing} have no default; pass --param NAME=VALUE")
    return values


def probe(host: str, token: str | None = None, timeout_s: float = 10) -> dict:
    """GET the server's healthz once.

    A clear error at once for an unreachable host or a refused token: kfp.Client itself
    retries healthz 5 times, 5 s apart, then says only 'timeout'.
    """
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{host.rstrip('/')}/apis/v2beta1/healthz")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        failure = RuntimeError(error.reason)
        failure.status, failure.reason, failure.body = error.code, error.reason, error.read()
        raise DeployError(
            f"Kubeflow Pipelines at {host} refused the health check: {_describe(failure)}"
        ) from error
    except (urllib.error.URLError, OSError) as error:
        raise DeployError(f"cannot reach Kubeflow Pipelines at {host}: {_describe(error)}") from error
    except ValueError as error:
        raise DeployError(f"{host} answered the KFP health check with something that is not JSON") from error


def connect(host: str, token: str | None = None, namespace: str | None = None):
    """A `kfp.Client` for `host`; raises DeployError when the server cannot be reached."""
    import kfp

    probe(host, token)
    try:
        return kfp.Client(host=host, existing_token=token, namespace=namespace)
    except Exception as error:  # kfp raises urllib3, ApiException, TimeoutError alike.
        raise DeployError(f"cannot reach Kubeflow Pipelines at {host}: {_describe(error)}") from error


def _describe(error: Exception) -> str:
    status = getattr(error, "status", None)
    if status in (401, 403):
        return f"HTTP {status}: not authorised (pass --token or check the account's access): {_body(error)}"
    if status:
        return f"HTTP {status} {getattr(error, 'reason', '')}: {_body(error)}".strip()
    reason = getattr(error, "reason", None)
    return f"{type(error).__name__}: {reason or error}"


def _body(error: Exception) -> str:
    body = getattr(error, "body", None) or ""
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    try:
        parsed = json.loads(body)
        return parsed.get("message") or parsed.get("error") or body
    except (TypeError, ValueError):
        return str(body)[:500]


def _call(step: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except DeployError:
        raise
    except Exception as error:
        raise DeployError(f"{step} failed: {_describe(error)}") from error


def _named(step: str, list_fn, items: str, name: str, **kwargs) -> list:
    """The objects a KFP list call returns whose display name is `name` (filtered server-side too)."""
    flt = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})
    response = _call(step, list_fn, page_size=PAGE_SIZE, filter=flt, **kwargs)
    return [item for item in (getattr(response, items) or []) if item.display_name == name]


def find_recurring_run(client, experiment_id: str, name: str):
    """The recurring run named `name` in the experiment, or None."""
    runs = _named(
        "listing recurring runs",
        client.list_recurring_runs,
        "recurring_runs",
        name,
        experiment_id=experiment_id,
    )
    if len(runs) > 1:
        raise DeployError(f"{len(runs)} recurring runs are named {name!r}; delete all but one in the KFP UI")
    return runs[0] if runs else None


def _version(client, pipeline_id: str, name: str):
    versions = _named(
        "listing pipeline versions",
        client.list_pipeline_versions,
        "pipeline_versions",
        name,
        pipeline_id=pipeline_id,
    )
    return versions[0] if versions else None


def _same_schedule(run, version_id: str, cron: str, params: dict) -> bool:
    reference = run.pipeline_version_reference
    current_params = (run.runtime_config.parameters if run.runtime_config else None) or {}
    return (
        reference is not None
        and reference.pipeline_version_id == version_id
        and run.trigger is not None
        and run.trigger.cron_schedule is not None
        and run.trigger.cron_schedule.cron == cron
        and run.max_concurrency in (1, "1")
        and bool(run.no_catchup)
        and current_params == params
    )


@dataclasses.dataclass(frozen=True)
class Plan:
    """A checked deploy request: nothing in it has been sent yet."""

    package: Path
    name: str
    version_name: str
    cron: str
    params: dict


def plan(package: Path, cron: str = DEFAULT_CRON, overrides: dict[str, str] | None = None) -> Plan:
    """Check the package, the cron and the parameters before any server is contacted."""
    cron = check_cron(cron)
    spec, digest = read_spec(package)
    params = parameter_values(spec, overrides or {})
    name = spec["pipelineInfo"]["name"]
    return Plan(Path(package), name, f"{name}-{digest}", cron, params)


def deploy(client, request: Plan, experiment: str = DEFAULT_EXPERIMENT) -> DeployResult:
    """Upload the package and create or update the weekly recurring run (see module docstring)."""
    package, name, version_name = request.package, request.name, request.version_name
    cron, params = request.cron, request.params
    actions = []

    pipeline_id = _call("looking up the pipeline", client.get_pipeline_id, name)
    if pipeline_id is None:
        pipeline = _call("uploading the pipeline", client.upload_pipeline, str(package), pipeline_name=name)
        pipeline_id = pipeline.pipeline_id
        actions.append(f"created pipeline {name}")
    version = _version(client, pipeline_id, version_name)
    if version is None:
        version = _call(
            "uploading the pipeline version",
            client.upload_pipeline_version,
            str(package),
            pipeline_version_name=version_name,
            pipeline_id=pipeline_id,
        )
        actions.append(f"uploaded version {version_name}")
    else:
        actions.append(f"version {version_name} already uploaded")

    experiment_obj = _call("getting or creating the experiment", client.create_experiment, experiment)
    run_name = f"{name}{RECURRING_RUN_SUFFIX}"
    existing = find_recurring_run(client, experiment_obj.experiment_id, run_name)
    if existing is not None and _same_schedule(existing, version.pipeline_version_id, cron, params):
        actions.append(f"recurring run {run_name} unchanged")
        return DeployResult(
            pipeline_id,
            version.pipeline_version_id,
            version_name,
            experiment_obj.experiment_id,
            existing.recurring_run_id,
            actions,
        )
    if existing is not None:
        _call("deleting the previous recurring run", client.delete_recurring_run, existing.recurring_run_id)
    created = _call(
        "creating the recurring run",
        client.create_recurring_run,
        experiment_id=experiment_obj.experiment_id,
        job_name=run_name,
        description=f"weekly retraining of {name} ({version_name})",
        cron_expression=cron,
        max_concurrency=1,
        no_catchup=True,
        params=params,
        pipeline_id=pipeline_id,
        version_id=version.pipeline_version_id,
        enabled=True,
    )
    actions.append(
        f"{'replaced' if existing is not None else 'created'} recurring run {run_name} "
        f"(cron '{cron}', max_concurrency 1, no catch-up)"
    )
    return DeployResult(
        pipeline_id,
        version.pipeline_version_id,
        version_name,
        experiment_obj.experiment_id,
        created.recurring_run_id,
        actions,
    )


def set_schedule_state(client, pipeline_name: str, experiment: str, action: str) -> str:
    """`pause`, `resume` or `delete` the pipeline's recurring run; return what was done."""
    run_name = f"{pipeline_name}{RECURRING_RUN_SUFFIX}"
    try:
        experiment_obj = client.get_experiment(experiment_name=experiment)
    except ValueError as error:
        raise DeployError(f"no experiment {experiment!r} on the server: nothing is scheduled") from error
    except Exception as error:
        raise DeployError(f"getting the experiment failed: {_describe(error)}") from error
    run = find_recurring_run(client, experiment_obj.experiment_id, run_name)
    if run is None:
        raise DeployError(f"no recurring run {run_name!r} in experiment {experiment!r}: deploy first")
    if action == "pause":
        _call("pausing", client.disable_recurring_run, run.recurring_run_id)
        return f"paused recurring run {run_name} ({run.recurring_run_id})"
    if action == "resume":
        _call("resuming", client.enable_recurring_run, run.recurring_run_id)
        return f"resumed recurring run {run_name} ({run.recurring_run_id}); missed weeks are not caught up"
    if action == "delete":
        _call("deleting", client.delete_recurring_run, run.recurring_run_id)
        return (
            f"deleted recurring run {run_name} ({run.recurring_run_id}); the pipeline and its versions stay"
        )
    raise ValueError(f"unknown action {action!r}")
