"""Kubeflow runner: compile `create_pipeline()` to a KFP v2 pipeline spec with KubeflowV2DagRunner.

The same DAG as the local runner, with what a cluster needs instead of local paths:
- every executor runs the project's image (`kubeflow/Dockerfile`), where the user code is an
  installed package named by dotted path (no `module_file` staged at compile time);
- the pipeline root, data root and serving directory are bucket URIs (gs://, s3://, minio://);
- runtime parameters (pipeline.RUNTIME_PARAMETERS) a recurring run can override;
- resources per component through its platform config: the Trainer asks for GPUs
  (`nvidia.com/gpu`, count configurable) and a node selector for the accelerator model;
- only container and importer executors, no lifecycle hooks: what open-source KFP 2.x runs
  (its backend compiler refuses any other executor and ignores hooks). The baseline and
  warm-start models come from `PushedModelResolver` container tasks (components/resolver),
  not resolver executors; ExampleGen resolves the span window inside its own task (its
  executor, when no driver ran), not in a pre-cache-check hook. Those tasks read state
  outside their inputs (the data root, the serving dir), so KFP must not cache them.

The output is KFP's own pipeline YAML: the PipelineSpec, then (second document) the
Kubernetes platform spec with the Trainer's node selector, as `kfp` itself writes it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Must precede the first TensorFlow import.

import yaml  # noqa: E402
from kfp.pipeline_spec import pipeline_spec_pb2  # noqa: E402
from tfx.orchestration import data_types  # noqa: E402
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner  # noqa: E402

from pipeline.config import PipelineConfig  # noqa: E402
from pipeline.local_runner import model_arguments  # noqa: E402
from pipeline.pipeline import RUNTIME_PARAMETERS, create_pipeline  # noqa: E402

ResourceSpec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec

# The curated schema inside the image, relative to its WORKDIR (/opt/pipeline, where
# kubeflow/Dockerfile installs the project): the same path resolves in a checkout's root,
# where `kfp-run` runs the tasks.
IMAGE_SCHEMA_PATH = "schemas/schema.pbtxt"
BUCKET_SCHEMES = ("gs://",)
# Schemes KFP users reach for that TensorFlow's file systems here cannot open.
UNSUPPORTED_SCHEMES = {
    "s3://": "TensorFlow 2.16 has no s3 file system (`File system scheme 's3' not implemented`; "
    "it moved to tensorflow-io, which has no wheel for this stack)",
    "minio://": "no TensorFlow file system reads minio:// (MinIO speaks S3, which TensorFlow "
    "2.16 cannot open either)",
}
# Tasks whose output depends on more than their inputs: a cached result would be stale.
UNCACHED_TASKS = ("SpanWindowCsvExampleGen", "latest_blessed_model_resolver", "warm_start_model_resolver")
DEFAULT_OUTPUT = Path("kubeflow/build/pipeline.yaml")
TRAINER_ID = "Trainer"
# Node label the GKE scheduler matches to a GPU model (other clouds: pass --accelerator-label).
ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
# Data-heavy Beam components; the rest are light (a gate reads a few files).
HEAVY_COMPONENTS = ("SpanWindowCsvExampleGen", "StatisticsGen", "Transform", "Evaluator")


class CompileError(ValueError):
    """A compile option is invalid; the message names it."""


@dataclasses.dataclass(frozen=True)
class KubeflowSettings:
    """What the compiled pipeline runs on.

    Attributes:
        image: the project's container image (every executor uses it).
        pipeline_root: bucket URI for artifacts (gs://, s3:// or minio://).
        data_root: bucket URI of `span-<k>/*.csv` folders.
        serving_dir: bucket URI of the TF Serving model base path the Pusher writes.
        beam_args: Beam options for the Beam-based components (e.g. DataflowRunner or a
            portable Flink/Spark runner).
        gpus: `nvidia.com/gpu` count for the Trainer (0: CPU training).
        gpu_resource: the resource name the Trainer asks GPUs under.
        accelerator: GPU model for the node selector (e.g. nvidia-tesla-t4); None: any node.
        accelerator_label: the node label that names the GPU model.
        trainer_cpu, trainer_memory_gib: Trainer CPU and memory (requests = limits).
        heavy_cpu, heavy_memory_gib: ExampleGen, StatisticsGen, Transform, Evaluator.
        light_cpu, light_memory_gib: the other components.
        tfjob_workers: 0 trains inside the Trainer's pod; N >= 1 submits a TFJob of N workers
            with `gpus` GPUs each (Kubeflow Training Operator).
        tfjob_namespace: namespace of those TFJobs.
    """

    image: str
    pipeline_root: str
    data_root: str
    serving_dir: str
    beam_args: tuple[str, ...] = ()
    gpus: int = 1
    gpu_resource: str = "nvidia.com/gpu"
    accelerator: str | None = None
    accelerator_label: str = ACCELERATOR_LABEL
    trainer_cpu: float = 8
    trainer_memory_gib: float = 32
    heavy_cpu: float = 4
    heavy_memory_gib: float = 16
    light_cpu: float = 1
    light_memory_gib: float = 4
    tfjob_workers: int = 0
    tfjob_namespace: str = "kubeflow"

    def __post_init__(self):
        if not self.image or any(c.isspace() for c in self.image):
            raise CompileError(f"--image must be a container image reference, got {self.image!r}")
        for name in ("pipeline_root", "data_root", "serving_dir"):
            value = getattr(self, name)
            for scheme, why in UNSUPPORTED_SCHEMES.items():
                if str(value).startswith(scheme):
                    raise CompileError(
                        f"--{name.replace('_', '-')} {value!r}: {scheme} roots are not supported: {why}"
                    )
            if not str(value).startswith(BUCKET_SCHEMES):
                raise CompileError(
                    f"--{name.replace('_', '-')} must be a bucket URI ({', '.join(BUCKET_SCHEMES)}): "
                    f"pods cannot see this machine's {value!r}"
                )
        for name in ("gpus", "tfjob_workers"):
            if getattr(self, name) < 0:
                raise CompileError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        for name in (
            "trainer_cpu",
            "trainer_memory_gib",
            "heavy_cpu",
            "heavy_memory_gib",
            "light_cpu",
            "light_memory_gib",
        ):
            if getattr(self, name) <= 0:
                raise CompileError(f"{name} must be > 0, got {getattr(self, name)}")
        object.__setattr__(self, "beam_args", tuple(self.beam_args))


def resource_spec(cpu: float, memory_gib: float, gpus: int = 0, gpu_resource: str = "") -> ResourceSpec:
    """Requests = limits (a pod that gets what it asked for is not evicted for using it)."""
    spec = ResourceSpec(cpu_limit=cpu, memory_limit=memory_gib, cpu_request=cpu, memory_request=memory_gib)
    if gpus:
        spec.accelerator.type = gpu_resource
        spec.accelerator.count = gpus
    return spec


def kfp_name(name: str) -> str:
    """KFP's pipeline names: [a-z0-9][a-z0-9-]{0,127} (the local name's underscores become dashes)."""
    return re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:128]


def build(config: PipelineConfig, settings: KubeflowSettings):
    """The TFX pipeline for Kubeflow: create_pipeline() plus per-component resources."""
    tfjob = None
    if settings.tfjob_workers:
        tfjob = {
            "image": settings.image,
            "workers": settings.tfjob_workers,
            "gpus_per_worker": settings.gpus,
            "cpu": str(settings.trainer_cpu),
            "memory": f"{settings.trainer_memory_gib:g}Gi",
            "namespace": settings.tfjob_namespace,
            "accelerator": settings.accelerator,
        }
    tfx_pipeline = create_pipeline(
        pipeline_name=kfp_name(config.pipeline_name),
        pipeline_root=settings.pipeline_root,
        data_root=settings.data_root,
        schema_path=IMAGE_SCHEMA_PATH,
        serving_dir=f"{settings.serving_dir.rstrip('/')}/{config.model_name}",
        # The image pins the code; a new image tag is a new pipeline version.
        code_version=settings.image,
        **model_arguments(config),
        beam_pipeline_args=list(settings.beam_args),
        metadata_connection_config=None,  # Kubeflow owns ML Metadata.
        tfjob=tfjob,
        runtime_parameters=True,
        portable_resolvers=True,
    )
    for node in tfx_pipeline.components:
        if node.id == TRAINER_ID:
            # With a TFJob the Trainer pod only submits and waits: the workers get the GPUs.
            gpus = 0 if settings.tfjob_workers else settings.gpus
            cpu, memory = (
                (settings.light_cpu, settings.light_memory_gib)
                if settings.tfjob_workers
                else (
                    settings.trainer_cpu,
                    settings.trainer_memory_gib,
                )
            )
            node.with_platform_config(resource_spec(cpu, memory, gpus, settings.gpu_resource))
        elif type(node).__name__ in HEAVY_COMPONENTS:
            node.with_platform_config(resource_spec(settings.heavy_cpu, settings.heavy_memory_gib))
        elif hasattr(node, "executor_spec"):
            node.with_platform_config(resource_spec(settings.light_cpu, settings.light_memory_gib))
    return tfx_pipeline


def compile_pipeline(
    config: PipelineConfig, settings: KubeflowSettings, output: Path = DEFAULT_OUTPUT
) -> Path:
    """Compile to `output` (KFP pipeline YAML); return its path."""
    tfx_pipeline = build(config, settings)
    runner_config = kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
        display_name=kfp_name(config.pipeline_name), default_image=settings.image, use_pipeline_spec_2_1=True
    )
    with tempfile.TemporaryDirectory() as tmp:
        kubeflow_v2_dag_runner.KubeflowV2DagRunner(
            config=runner_config, output_dir=tmp, output_filename="pipeline_job.json"
        ).run(tfx_pipeline, write_out=True)
        job = json.loads(Path(tmp, "pipeline_job.json").read_text())
    spec = job["pipelineSpec"]
    spec["defaultPipelineRoot"] = settings.pipeline_root
    _drop_lifecycle_hooks(spec)
    _disable_cache(spec, UNCACHED_TASKS)
    _fill_resources(spec, tfx_pipeline)
    _set_parameter_defaults(spec, runtime_parameter_defaults(tfx_pipeline))
    documents = [spec]
    platform = _platform_spec(spec, settings)
    if platform:
        documents.append(platform)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp_output = output.with_name(output.name + ".tmp")
    tmp_output.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    os.replace(tmp_output, output)
    return output


def executor_label(spec: dict, task_id: str) -> str:
    """The deployment-spec executor of a task (`Trainer` -> `Trainer_executor`)."""
    component = spec["root"]["dag"]["tasks"][task_id]["componentRef"]["name"]
    return spec["components"][component]["executorLabel"]


def _drop_lifecycle_hooks(spec: dict) -> None:
    """Remove the pre-cache-check hook TFX gives every file-based ExampleGen.

    Open-source KFP never runs it; our ExampleGen executor resolves the window itself.
    """
    dropped = [
        label
        for label, ex in spec["deploymentSpec"]["executors"].items()
        if ex.get("container", {}).pop("lifecycle", None)
    ]
    if len(dropped) != 1 or "ExampleGen" not in dropped[0]:
        raise CompileError(f"expected one ExampleGen lifecycle hook in the compiled spec, found {dropped}")


def _disable_cache(spec: dict, task_ids) -> None:
    for task_id in task_ids:
        task = spec["root"]["dag"]["tasks"].get(task_id)
        if task is not None:
            task["cachingOptions"] = {"enableCache": False}


def _fill_resources(spec: dict, tfx_pipeline) -> None:
    """TFX's compiler drops the platform config of a FileBasedExampleGen: put it back."""
    from google.protobuf import json_format

    for node in tfx_pipeline.components:
        if getattr(node, "platform_config", None) is None or node.id not in spec["root"]["dag"]["tasks"]:
            continue
        container = spec["deploymentSpec"]["executors"][executor_label(spec, node.id)].get("container")
        if container is not None and "resources" not in container:
            container["resources"] = json_format.MessageToDict(node.platform_config)


def runtime_parameter_defaults(tfx_pipeline) -> dict:
    """Name -> default of every RuntimeParameter in the pipeline's exec properties."""
    defaults = {}
    for node in tfx_pipeline.components:
        for value in getattr(node, "exec_properties", {}).values():
            if isinstance(value, data_types.RuntimeParameter):
                defaults[value.name] = value.default
    return defaults


def _set_parameter_defaults(spec: dict, defaults: dict) -> None:
    """Put defaults and descriptions into the spec's root inputs (TFX leaves them out)."""
    parameters = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    if set(parameters) != set(defaults):
        raise CompileError(
            f"runtime parameters {sorted(parameters)} do not match their defaults {sorted(defaults)}"
        )
    for name, value in defaults.items():
        parameters[name]["defaultValue"] = value
        parameters[name]["isOptional"] = True
        parameters[name]["description"] = RUNTIME_PARAMETERS[name]


def _platform_spec(spec: dict, settings: KubeflowSettings) -> dict | None:
    if not settings.accelerator or settings.tfjob_workers or not settings.gpus:
        return None
    return {
        "platforms": {
            "kubernetes": {
                "deploymentSpec": {
                    "executors": {
                        executor_label(spec, TRAINER_ID): {
                            "nodeSelector": {"labels": {settings.accelerator_label: settings.accelerator}}
                        }
                    }
                }
            }
        }
    }
