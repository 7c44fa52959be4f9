"""The Evaluator's TFMA config: metrics, slices and the thresholds a model must meet to be blessed."""

from __future__ import annotations

import tensorflow_model_analysis as tfma
from google.protobuf.wrappers_pb2 import BoolValue

from models import features
from models.signatures import SERVING_SIGNATURE, TRANSFORM_SIGNATURE
from tfma_batched import metrics as batched_metrics

LABEL_KEY = features.LABEL_KEY


def make_eval_config(
    auc_threshold: float,
    regression_tolerance: float,
    *,
    calibration_tolerance: float | None = None,
    batched: bool = True,
) -> tfma.EvalConfig:
    """TFMA config: the metrics, the slices, the AUC floor, no regression, calibration bounds.

    The thresholds apply to the overall slice only: a slice of a few dozen trips (one hour
    of one weekday) has an AUC too noisy to veto a push. `calibration_tolerance` X blesses
    only a model whose calibration (mean prediction / mean label, TFMA's `calibration`) lies
    within [1 - X, 1 + X]: a model that ranks well (high AUC) but whose probabilities are off
    by a third would otherwise be pushed, and every threshold a consumer puts on its score
    would be wrong. None: no calibration threshold.

    `batched` names the metrics' batched forms (`tfma_batched/metrics.py`, behind the Evaluator's
    `module_path`); False names TFMA's own classes, for TFMA's stock per-example path (the
    comparison test and benchmark run both).
    """
    module = batched_metrics.METRICS_MODULE if batched else ""
    prefix = batched_metrics.BATCHED_PREFIX if batched else ""
    auc_threshold_config = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": auc_threshold}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -regression_tolerance},
        ),
    )
    metrics = [
        tfma.MetricConfig(class_name=prefix + "ExampleCount", module=module),
        tfma.MetricConfig(class_name=prefix + "BinaryAccuracy", module=module),
        tfma.MetricConfig(
            class_name=prefix + "AUC",
            module=module,
            config='{"num_thresholds": 1000}',
            per_slice_thresholds=[
                tfma.PerSliceMetricThreshold(
                    slicing_specs=[tfma.SlicingSpec()], threshold=auc_threshold_config
                )
            ],
        ),
        tfma.MetricConfig(
            class_name=prefix + "AUC",
            module=module,
            config='{"curve": "PR", "name": "auc_pr", "num_thresholds": 1000}',
        ),
        tfma.MetricConfig(class_name=prefix + "Precision", module=module),
        tfma.MetricConfig(class_name=prefix + "Recall", module=module),
        tfma.MetricConfig(
            class_name=prefix + "Calibration",
            module=module,
            per_slice_thresholds=[]
            if calibration_tolerance is None
            else [
                tfma.PerSliceMetricThreshold(
                    slicing_specs=[tfma.SlicingSpec()],
                    threshold=tfma.MetricThreshold(
                        value_threshold=tfma.GenericValueThreshold(
                            lower_bound={"value": 1.0 - calibration_tolerance},
                            upper_bound={"value": 1.0 + calibration_tolerance},
                        )
                    ),
                )
            ],
        ),
        tfma.MetricConfig(class_name=prefix + "MeanLabel", module=module),
        tfma.MetricConfig(class_name=prefix + "MeanPrediction", module=module),
    ]
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                # Evaluate through the exported signatures (tf.saved_model.load), as a server
                # sees the model; also spares TFMA a full Keras load just to detect the type.
                model_type=tfma.TF_GENERIC,
                signature_name=SERVING_SIGNATURE,
                label_key=LABEL_KEY,
                # The label is computed by the Transform graph (from tips and fare).
                preprocessing_function_names=[TRANSFORM_SIGNATURE],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()]
        + [tfma.SlicingSpec(feature_keys=[key]) for key in features.SLICE_FEATURES],
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
        # Only the metrics above: the defaults would re-run the Keras metrics compiled into
        # the model over every slice, for figures nobody reads.
        options=tfma.Options(include_default_metrics=BoolValue(value=False)),
    )
