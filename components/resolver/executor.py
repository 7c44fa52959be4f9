"""PushedModelResolver executor: the baseline (or warm-start) model from the serving dir.

Open-source Kubeflow Pipelines runs only container and importer executors, so the resolver
nodes of a local run (ML Metadata queries) cannot run there. This container task reads what
the AtomicPusher recorded in every version it pushed (`assets.extra/push_record.json`: the
version and the Model artifact it came from), picks the newest version whose source model is
not the candidate, and copies that SavedModel into its own `model` output
(`<uri>/Format-Serving/`, the layout of a Trainer's Model), so the Evaluator and the Trainer
read it like any model. With none (the first push has not happened, or the only one is the
candidate itself), the output is empty with `found` 0 and the Evaluator runs without a
baseline, as TFX does locally before the first blessing.
"""

from __future__ import annotations

import logging
import os

from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from components.resolver import spec
from components.shared import read_push_records

log = logging.getLogger(__name__)


def pick_baseline(records: list[dict], candidate_uri: str | None) -> dict | None:
    """The newest push record whose model is not the candidate (None: no such push)."""
    candidate = (candidate_uri or "").rstrip("/")
    for record in sorted(records, key=lambda r: r["version"], reverse=True):
        if str(record.get("model_uri", "")).rstrip("/") != candidate or not candidate:
            return record
    return None


class Executor(base_executor.BaseExecutor):
    """Copies the newest pushed model that is not the candidate into the `model` output."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX's name)
        output = artifact_utils.get_single_instance(output_dict[spec.MODEL_KEY])
        serving_dir = exec_properties[spec.SERVING_DIR_KEY]
        candidates = input_dict.get(spec.CANDIDATE_KEY) or []
        candidate_uri = candidates[0].uri if candidates else None
        record = pick_baseline(read_push_records(serving_dir), candidate_uri)
        fileio.makedirs(output.uri)
        if record is None:
            reason = f"no pushed version under {serving_dir}" + (
                " other than the candidate's" if candidate_uri else ""
            )
            output.set_int_custom_property(spec.FOUND_PROPERTY, 0)
            output.set_string_custom_property(spec.REASON_PROPERTY, reason)
            log.info("No baseline: %s", reason)
            return
        source = os.path.join(serving_dir, str(record["version"]))
        io_utils.copy_dir(source, path_utils.serving_model_dir(output.uri))
        output.set_int_custom_property(spec.FOUND_PROPERTY, 1)
        output.set_int_custom_property(spec.PUSHED_VERSION_PROPERTY, int(record["version"]))
        output.set_string_custom_property(spec.SOURCE_MODEL_URI_PROPERTY, str(record.get("model_uri", "")))
        log.info("Baseline: pushed version %s (model %s)", record["version"], record.get("model_uri"))
