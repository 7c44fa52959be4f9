"""ServingGate executor: run the checks, write the verdict, bless or refuse.

A refusal is not an error: the run completes, the verdict artifact says why, and the Pusher
(which reads the `blessed` property) pushes nothing, as for a model the Evaluator rejects.
"""

from __future__ import annotations

import logging
import os

import numpy as np
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.serving_gate import spec
from components.shared import releases_memory, split_files
from models.signatures import RAW_SIGNATURE
from serving import gate_checks as checks
from serving.eval_results import evaluation_metrics
from serving.replay_source import ReplaySource

log = logging.getLogger(__name__)


class Executor(base_executor.BaseExecutor):
    """Replays the split through the model's signatures; blesses only when every check passes."""

    @releases_memory
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        model = artifact_utils.get_single_instance(input_dict[spec.MODEL_KEY])
        examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
        blessing = artifact_utils.get_single_instance(output_dict[spec.BLESSING_KEY])
        split = exec_properties[spec.SPLIT_KEY]
        evaluator_figures = None
        if input_dict.get(spec.EVALUATION_KEY):
            evaluation = artifact_utils.get_single_instance(input_dict[spec.EVALUATION_KEY])
            evaluator_figures, _ = evaluation_metrics(evaluation.uri)
        verdict = checks.run_checks(
            path_utils.serving_model_path(model.uri),
            ReplaySource.from_files(split_files(examples, split)),
            evaluator_figures=evaluator_figures,
            metric_tolerance=float(exec_properties[spec.METRIC_TOLERANCE_KEY]),
            parity_tolerance=float(exec_properties[spec.PARITY_TOLERANCE_KEY]),
        )
        fileio.makedirs(blessing.uri)
        with fileio.open(os.path.join(blessing.uri, spec.VERDICT_FILE_NAME), "w") as handle:
            handle.write(verdict.to_json())
        if RAW_SIGNATURE in verdict.answers:
            with fileio.open(os.path.join(blessing.uri, spec.RAW_ANSWERS_FILE_NAME), "wb") as handle:
                np.save(handle, verdict.answers[RAW_SIGNATURE])
        blessing.set_int_custom_property(spec.BLESSED_PROPERTY, int(verdict.blessed))
        blessing.set_string_custom_property(spec.VERDICT_PROPERTY, verdict.summary())
        if verdict.blessed:
            log.info("ServingGate %s", verdict.summary())
        else:
            log.error("ServingGate REFUSED the push of %s:\n%s", model.uri, verdict.format())
