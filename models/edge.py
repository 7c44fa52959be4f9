"""The edge model: the SavedModel's `serving_raw` signature as a TensorFlow Lite flatbuffer.

The Transform graph uses TFLite builtin ops only (`models/transform.py`), so the very graph
that serves the SavedModel converts whole: the edge model takes the raw features, missing
markers included, and an app needs no preprocessing of its own. Conversion refuses Flex
(SELECT_TF_OPS): a model that needs them does not run in the standalone edge runtime.

Variants: float32 (no optimisation), float16 (weights), int8 (post-training: the dense
layers' weights and activations in int8, ranges calibrated on a representative dataset of
real raw trips, the preprocessing kept in float32; float32 inputs and outputs at the
boundary, so callers pass the same tensors as to `serving_raw`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import tensorflow as tf

from models.signatures import RAW_SIGNATURE

VARIANTS = ("float32", "float16", "int8")
# The int8 calibration set: real trips from the training split, as the TFLite guide advises.
REPRESENTATIVE_TRIPS = 100


def convert(
    saved_model_dir: str,
    variant: str = "int8",
    representative: Iterable[Mapping[str, np.ndarray]] | None = None,
) -> bytes:
    """The `serving_raw` signature of `saved_model_dir` as a TFLite model (builtin ops only).

    Args:
        saved_model_dir: a SavedModel with our signatures.
        variant: float32, float16 or int8.
        representative: for int8, single-example raw feature dicts (each value shape [1]).

    Raises:
        ValueError: unknown variant, or int8 without a representative dataset.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[RAW_SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        if representative is None:
            raise ValueError("int8 needs a representative dataset of real raw trips")
        samples = list(representative)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (dict(s) for s in samples)
        # Only the network's dense layers in int8: quantizing the preprocessing (coordinates
        # against their bucket boundaries, z-score statistics, comparisons) moves trips across
        # buckets (README, Edge: `benchmarks/bench_edge.py` prints the int8 model's figures).
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=converter.representative_dataset,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(
                # Every builtin op but these (no second conversion to learn which ones it has).
                denylisted_ops=sorted(_builtin_op_names() - INT8_OPS)
            ),
        )
        return debugger.get_nondebug_quantized_model()
    return converter.convert()


# The ops quantized in the int8 variant: the network's matrix products.
INT8_OPS = frozenset({"FULLY_CONNECTED"})


def representative_trips(
    raw: Mapping[str, np.ndarray], count: int = REPRESENTATIVE_TRIPS, seed: int = 0
) -> list[dict[str, np.ndarray]]:
    """`count` seeded single-trip feature dicts drawn from `raw` (a split's raw features)."""
    size = len(next(iter(raw.values())))
    picked = np.random.default_rng(seed).choice(size, count, replace=False)
    return [{k: v[i : i + 1] for k, v in raw.items()} for i in picked]


def _builtin_op_names() -> set[str]:
    from tensorflow.lite.python import schema_py_generated as schema

    return {name for name in vars(schema.BuiltinOperator) if not name.startswith("_")}


def builtin_ops(flatbuffer: bytes) -> set[str]:
    """The names of the builtin ops a TFLite flatbuffer runs."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    return {
        names[model.operatorCodes[op.opcodeIndex].builtinCode]
        for subgraph in model.subgraphs
        for op in subgraph.operators
    }
