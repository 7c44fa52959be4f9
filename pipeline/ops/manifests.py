"""Kubernetes manifests the project generates: the KServe InferenceService serving the model.

The Pusher writes TF Serving's layout (`<serving dir>/<model name>/<integer version>/`), which
KServe's TensorFlow predictor serves as it is: `storageUri` is the model's base path and TF
Serving picks the newest version. The manifest is built from the `kserve` package's own
v1beta1 models (generated from KServe's OpenAPI schema), so a field KServe does not know, or
a required one left out, fails here rather than at `kubectl apply`.
"""

from __future__ import annotations

import dataclasses
import re

import yaml

from pipeline.config import MODEL_NAME

DEFAULT_TF_SERVING_VERSION = "2.16.1"  # TF Serving release matching TensorFlow 2.16.
STORAGE_SCHEMES = ("gs://", "s3://", "pvc://", "https://", "hdfs://", "webhdfs://")
_DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")


class ManifestError(ValueError):
    """A manifest option is invalid; the message names it."""


@dataclasses.dataclass(frozen=True)
class ServingSettings:
    """The InferenceService's settings.

    Attributes:
        storage_uri: the model's base path in the bucket (the Pusher's serving dir + model name).
        name: InferenceService name (DNS-1123; the model's dashes-for-underscores by default).
        namespace: Kubernetes namespace.
        runtime_version: TF Serving image tag.
        cpu, memory: requests (limits are twice these).
        gpus: `nvidia.com/gpu` limit (0: CPU serving).
        min_replicas, max_replicas: autoscaling range.
        service_account: the account whose secret reads the bucket (optional).
        log_url: where KServe's inference logger sends each request and response as a
            CloudEvent (the predictor's `logger`, mode `all`); None: no logger.
    """

    storage_uri: str
    name: str = MODEL_NAME.replace("_", "-")
    namespace: str = "kubeflow"
    runtime_version: str = DEFAULT_TF_SERVING_VERSION
    cpu: str = "1"
    memory: str = "2Gi"
    gpus: int = 0
    min_replicas: int = 1
    max_replicas: int = 3
    service_account: str | None = None
    log_url: str | None = None

    def __post_init__(self):
        if self.log_url is not None and not re.match(r"^https?://[^\s/]+", self.log_url):
            raise ManifestError(f"--log-url must be an http:// or https:// URL, got {self.log_url!r}")
        if not self.storage_uri.startswith(STORAGE_SCHEMES):
            raise ManifestError(
                "--storage-uri must be a URI KServe's storage initializer can read "
                f"({', '.join(STORAGE_SCHEMES)}), got {self.storage_uri!r}"
            )
        if not _DNS_1123.match(self.name):
            raise ManifestError(f"--name must be a DNS-1123 label (a-z, 0-9, '-'), got {self.name!r}")
        for field in ("cpu", "memory"):
            if not _QUANTITY.match(getattr(self, field)):
                raise ManifestError(f"--{field} must be a Kubernetes quantity, got {getattr(self, field)!r}")
        if self.gpus < 0 or self.min_replicas < 0 or self.max_replicas < max(1, self.min_replicas):
            raise ManifestError(
                f"need gpus >= 0 and 1 <= max_replicas >= min_replicas >= 0; got gpus={self.gpus}, "
                f"min_replicas={self.min_replicas}, max_replicas={self.max_replicas}"
            )


def _double(quantity: str) -> str:
    match = re.match(r"^([0-9.]+)(.*)$", quantity)
    value = float(match.group(1)) * 2
    return f"{value:g}{match.group(2)}"


def inference_service(settings: ServingSettings) -> dict:
    """The InferenceService as a dict, built and serialised through kserve's v1beta1 models."""
    import kserve
    from kubernetes.client import V1ObjectMeta, V1ResourceRequirements

    limits = {"cpu": _double(settings.cpu), "memory": _double(settings.memory)}
    if settings.gpus:
        limits["nvidia.com/gpu"] = str(settings.gpus)
    service = kserve.V1beta1InferenceService(
        api_version=f"{kserve.constants.KSERVE_GROUP}/{kserve.constants.KSERVE_V1BETA1_VERSION}",
        kind=kserve.constants.KSERVE_KIND,
        metadata=V1ObjectMeta(
            name=settings.name,
            namespace=settings.namespace,
            labels={"app.kubernetes.io/part-of": "taxi-big-tipper-pipeline"},
        ),
        spec=kserve.V1beta1InferenceServiceSpec(
            predictor=kserve.V1beta1PredictorSpec(
                min_replicas=settings.min_replicas,
                max_replicas=settings.max_replicas,
                service_account_name=settings.service_account,
                logger=(
                    kserve.V1beta1LoggerSpec(mode="all", url=settings.log_url) if settings.log_url else None
                ),
                tensorflow=kserve.V1beta1TFServingSpec(
                    storage_uri=settings.storage_uri,
                    runtime_version=settings.runtime_version,
                    resources=V1ResourceRequirements(
                        requests={"cpu": settings.cpu, "memory": settings.memory}, limits=limits
                    ),
                ),
            )
        ),
    )
    manifest = kserve.ApiClient().sanitize_for_serialization(service)
    tf_spec = manifest["spec"]["predictor"]["tensorflow"]
    if not tf_spec.get("name"):
        tf_spec.pop("name", None)  # The generated model's "" default: KServe names the container.
    errors = schema_errors(manifest)
    if errors:
        raise ManifestError("generated InferenceService does not conform: " + "; ".join(errors))
    return manifest


def schema_errors(manifest: dict) -> list[str]:
    """Where `manifest` departs from KServe's v1beta1 InferenceService schema; empty if nowhere.

    The schema is the one the `kserve` package's generated models encode (Kubernetes core types
    via `kubernetes.client`): unknown fields, wrong types, missing required fields.
    """
    import kserve.models
    import kubernetes.client.models

    errors: list[str] = []

    def resolve(name: str):
        return getattr(kserve.models, name, None) or getattr(kubernetes.client.models, name, None)

    def check(value, type_name: str, path: str) -> None:
        if value is None:
            return
        if type_name.startswith("list["):
            if not isinstance(value, list):
                errors.append(f"{path}: expected a list, got {type(value).__name__}")
                return
            for i, item in enumerate(value):
                check(item, type_name[5:-1], f"{path}[{i}]")
            return
        if type_name.startswith("dict("):
            if not isinstance(value, dict):
                errors.append(f"{path}: expected a mapping, got {type(value).__name__}")
                return
            inner = type_name[type_name.index(",") + 1 : -1].strip()
            for key, item in value.items():
                check(item, inner, f"{path}.{key}")
            return
        primitive = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object}
        if type_name in primitive:
            if not isinstance(value, primitive[type_name]) or (
                type_name == "int" and isinstance(value, bool)
            ):
                errors.append(f"{path}: expected {type_name}, got {value!r}")
            return
        if type_name in ("datetime", "date"):
            return
        klass = resolve(type_name)
        if klass is None:
            errors.append(f"{path}: schema type {type_name} is unknown")
            return
        if not isinstance(value, dict):
            errors.append(f"{path}: expected an object ({type_name}), got {value!r}")
            return
        fields = {json_name: attr for attr, json_name in klass.attribute_map.items()}
        for key, item in value.items():
            if key not in fields:
                errors.append(f"{path}.{key}: not a field of {type_name}")
            else:
                check(item, klass.openapi_types[fields[key]], f"{path}.{key}")

    check(manifest, "V1beta1InferenceService", "InferenceService")
    for field in ("apiVersion", "kind", "metadata", "spec"):
        if field not in manifest:
            errors.append(f"InferenceService.{field}: required")
    if manifest.get("apiVersion") != "serving.kserve.io/v1beta1":
        errors.append(
            "InferenceService.apiVersion: expected serving.kserve.io/v1beta1, "
            f"got {manifest.get('apiVersion')!r}"
        )
    if manifest.get("kind") != "InferenceService":
        errors.append(f"InferenceService.kind: expected InferenceService, got {manifest.get('kind')!r}")
    if not (manifest.get("metadata") or {}).get("name"):
        errors.append("InferenceService.metadata.name: required")
    predictor = (manifest.get("spec") or {}).get("predictor")
    if not predictor:
        errors.append("InferenceService.spec.predictor: required")
    else:
        frameworks = [k for k in FRAMEWORKS if k in predictor]
        if len(frameworks) + bool(predictor.get("model")) + bool(predictor.get("containers")) != 1:
            errors.append(
                f"InferenceService.spec.predictor: exactly one model server required, got {frameworks}"
            )
    return errors


# Predictor model-server fields of v1beta1 (one of these, `model`, or `containers`).
FRAMEWORKS = (
    "tensorflow",
    "sklearn",
    "xgboost",
    "pytorch",
    "triton",
    "onnx",
    "pmml",
    "lightgbm",
    "paddle",
    "huggingface",
)


def to_yaml(manifest: dict) -> str:
    """YAML for `kubectl apply -f`."""
    return yaml.safe_dump(manifest, sort_keys=False)
