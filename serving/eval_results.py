"""Reading the Evaluator's figures back from a ModelEvaluation artifact (TFMA's output files)."""

from __future__ import annotations

OVERALL_SLICE = "overall"


def candidate_metrics(metrics_for_slice) -> dict[str, float]:
    """Metric name -> value of the candidate model (not the baseline, not the diff)."""
    values = {}
    for item in metrics_for_slice.metric_keys_and_values:
        key = item.key
        if key.is_diff or key.model_name not in ("", "candidate"):
            continue
        if item.value.HasField("double_value"):
            values[key.name] = item.value.double_value.value
    return values


def slice_name(slice_key) -> str:
    """`column=value[, column=value]` of a TFMA slice key; "overall" for the empty key."""
    parts = []
    for single in slice_key.single_slice_keys:
        kind = single.WhichOneof("kind")
        value = getattr(single, kind) if kind else ""
        if isinstance(value, bytes):
            value = value.decode()
        parts.append(f"{single.column}={value}")
    return ", ".join(parts) or OVERALL_SLICE


def evaluation_metrics(evaluation_uri: str) -> tuple[dict[str, float], list[tuple[str, dict[str, float]]]]:
    """(overall metrics, [(slice name, metrics)]) from a ModelEvaluation artifact's folder."""
    import tensorflow_model_analysis as tfma  # Heavy; only needed when there is an evaluation.

    overall, slices = {}, []
    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        name = slice_name(metrics_for_slice.slice_key)
        values = candidate_metrics(metrics_for_slice)
        if name == OVERALL_SLICE:
            overall = values
        else:
            slices.append((name, values))
    return overall, slices
