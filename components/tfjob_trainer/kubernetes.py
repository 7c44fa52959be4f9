"""Kubeflow Training Operator TFJobs: the manifest, a small Kubernetes API client, and the wait.

The manifest (kubeflow.org/v1 TFJob) runs N worker pods of the project's image, each
`python -m models.train_worker <spec>`; the operator gives each pod its TF_CONFIG, so the
same `run_fn` trains with MultiWorkerMirroredStrategy and only the chief exports. Pods restart
on failure (`restartPolicy: OnFailure`) and resume from the Keras backup.

The client speaks the Kubernetes REST API directly (create, read, delete a custom object) with
the pod's service-account token, so the Trainer image needs no Kubernetes SDK.
"""

from __future__ import annotations

import dataclasses
import json
import re
import ssl
import time
import urllib.error
import urllib.request

API_GROUP, API_VERSION, PLURAL, KIND = "kubeflow.org", "v1", "tfjobs", "TFJob"
# The Training Operator requires this container name in TFJob replicas.
CONTAINER_NAME = "tensorflow"
IN_CLUSTER_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
IN_CLUSTER_CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
IN_CLUSTER_API = "https://kubernetes.default.svc"


class TFJobError(RuntimeError):
    """The TFJob could not be submitted, failed, or did not finish in time."""


@dataclasses.dataclass(frozen=True)
class TFJobSettings:
    """How to run the training job.

    Attributes:
        image: the project's container image (the same as the pipeline's).
        workers: number of worker pods (worker 0 is the chief).
        gpus_per_worker: `nvidia.com/gpu` limit of each worker (0 for CPU training).
        cpu, memory: requests (and limits) of each worker.
        namespace: Kubernetes namespace of the job.
        accelerator: node selector value for `cloud.google.com/gke-accelerator` (optional).
        timeout_s: how long to wait for the job before deleting it and failing.
        backoff_limit: pod restarts allowed before the operator marks the job failed.
    """

    image: str
    workers: int = 2
    gpus_per_worker: int = 0
    cpu: str = "4"
    memory: str = "16Gi"
    namespace: str = "kubeflow"
    accelerator: str | None = None
    timeout_s: int = 3600
    backoff_limit: int = 3

    def __post_init__(self):
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.gpus_per_worker < 0:
            raise ValueError(f"gpus_per_worker must be >= 0, got {self.gpus_per_worker}")
        if not self.image:
            raise ValueError("image is required: the workers run the project's image")


def job_name(execution_id: int | str, prefix: str = "taxi-trainer") -> str:
    """A DNS-1123 name, unique per Trainer execution."""
    name = re.sub(r"[^a-z0-9-]", "-", f"{prefix}-{execution_id}".lower()).strip("-")
    return name[:63]


def tfjob_manifest(name: str, spec_uri: str, settings: TFJobSettings) -> dict:
    """The kubeflow.org/v1 TFJob running `settings.workers` workers of `models.train_worker`."""
    resources = {
        "requests": {"cpu": settings.cpu, "memory": settings.memory},
        "limits": {"cpu": settings.cpu, "memory": settings.memory},
    }
    if settings.gpus_per_worker:
        resources["limits"]["nvidia.com/gpu"] = settings.gpus_per_worker
    pod_spec = {
        "containers": [
            {
                "name": CONTAINER_NAME,
                "image": settings.image,
                "command": ["python", "-m", "models.train_worker", spec_uri],
                "env": [{"name": "TF_USE_LEGACY_KERAS", "value": "1"}],
                "resources": resources,
            }
        ]
    }
    if settings.accelerator:
        pod_spec["nodeSelector"] = {"cloud.google.com/gke-accelerator": settings.accelerator}
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "namespace": settings.namespace, "labels": {"app": "taxi-trainer"}},
        "spec": {
            "runPolicy": {"cleanPodPolicy": "Running", "backoffLimit": settings.backoff_limit},
            "tfReplicaSpecs": {
                "Worker": {
                    "replicas": settings.workers,
                    "restartPolicy": "OnFailure",
                    "template": {"spec": pod_spec},
                }
            },
        },
    }


class KubernetesClient:
    """Create, read and delete TFJobs through the Kubernetes API server."""

    def __init__(self, api_server: str, token: str | None = None, ca_file: str | None = None):
        self.api_server = api_server.rstrip("/")
        self.token = token
        self.context = ssl.create_default_context(cafile=ca_file) if api_server.startswith("https") else None

    @classmethod
    def in_cluster(cls) -> KubernetesClient:
        """The client a pod uses: the service account's token and CA."""
        with open(IN_CLUSTER_TOKEN) as handle:
            token = handle.read().strip()
        return cls(IN_CLUSTER_API, token=token, ca_file=IN_CLUSTER_CA)

    def _url(self, namespace: str, name: str | None = None) -> str:
        url = f"{self.api_server}/apis/{API_GROUP}/{API_VERSION}/namespaces/{namespace}/{PLURAL}"
        return f"{url}/{name}" if name else url

    def _call(self, method: str, url: str, body: dict | None = None) -> dict:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.context) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:500]
            raise TFJobError(f"{method} {url} failed: HTTP {error.code}: {detail}") from None
        except urllib.error.URLError as error:
            raise TFJobError(
                f"cannot reach the Kubernetes API at {self.api_server}: {error.reason}"
            ) from None

    def create(self, manifest: dict) -> dict:
        return self._call("POST", self._url(manifest["metadata"]["namespace"]), manifest)

    def get(self, namespace: str, name: str) -> dict:
        return self._call("GET", self._url(namespace, name))

    def delete(self, namespace: str, name: str) -> dict:
        return self._call("DELETE", self._url(namespace, name))


def job_state(job: dict) -> tuple[str, str]:
    """(state, message) of a TFJob from its newest true condition: Created, Running, Succeeded, Failed."""
    conditions = [c for c in job.get("status", {}).get("conditions", []) if c.get("status") == "True"]
    if not conditions:
        return "Pending", ""
    last = conditions[-1]
    return last.get("type", "Unknown"), last.get("message", "")


def run_tfjob(
    client: KubernetesClient, manifest: dict, timeout_s: float, poll_s: float = 10.0, log=print
) -> dict:
    """Submit the job and wait for it; return its final object.

    Raises:
        TFJobError: when submission fails, the job fails (with the operator's message), or it
            does not finish within `timeout_s` (the job is then deleted, so its pods stop).
    """
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    client.create(manifest)
    workers = manifest["spec"]["tfReplicaSpecs"]["Worker"]["replicas"]
    log(f"submitted TFJob {namespace}/{name} ({workers} workers)")
    deadline = time.monotonic() + timeout_s
    last_state = None
    while True:
        job = client.get(namespace, name)
        state, message = job_state(job)
        if state != last_state:
            log(f"TFJob {name}: {state}{': ' + message if message else ''}")
            last_state = state
        if state == "Succeeded":
            return job
        if state == "Failed":
            raise TFJobError(f"TFJob {namespace}/{name} failed: {message or 'no message from the operator'}")
        if time.monotonic() >= deadline:
            client.delete(namespace, name)
            raise TFJobError(
                f"TFJob {namespace}/{name} did not finish within {timeout_s:g} s "
                f"(last state {state}); deleted it"
            )
        time.sleep(poll_s)
