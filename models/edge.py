"""The edge model: the SavedModel's `serving_raw` signature as a TensorFlow Lite flatbuffer.

The Transform graph uses TFLite builtin ops only (`models/transform.py`), so the very graph
that serves the SavedModel converts whole: the edge model takes the raw features, missing
markers included, and an app needs no preprocessing of its own. Conversion refuses Flex
(SELECT_TF_OPS): a model that needs them does not run in the standalone edge runtime.

Variants: float32 (no optimisation), float16 (weights), int8 (post-training: the network's
hidden dense layers and embedding tables in int8, ranges calibrated on a representative
dataset of real raw trips; the preprocessing and the one-unit output layer kept in float32
(see `float32_nodes`); float32 inputs and outputs at the
boundary, so callers pass the same tensors as to `serving_raw`). Every variant leaves out
the tensor names (debug strings the runtime never reads; the signature keeps its names).
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping

import numpy as np
import tensorflow as tf
from tensorflow.lite.python.convert_phase import ConverterError

from models.signatures import RAW_SIGNATURE

VARIANTS = ("float32", "float16", "int8")
# What a model that cannot be converted raises (the converter's own error among them).
CONVERSION_ERRORS = (ConverterError, ValueError, RuntimeError, tf.errors.OpError)
# The int8 calibration set: real trips from the training split, as the TFLite guide advises.
REPRESENTATIVE_TRIPS = 100
# The ops quantized in the int8 variant: the network's matrix products and its embedding
# lookups (a GATHER from a constant float table); every other op is preprocessing.
INT8_OPS = frozenset({"FULLY_CONNECTED", "GATHER"})


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
    samples = None
    if variant == "int8":
        samples = list(representative or [])
        if not samples:
            raise ValueError("int8 needs a representative dataset of real raw trips: none given")
    converter = _converter(saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    # The converter's own metadata (its version and options) is a second flatbuffer pass
    # for bytes no runtime reads.
    converter.exclude_conversion_metadata = True
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (dict(s) for s in samples)
        # Only the network in int8: quantizing the preprocessing (coordinates against their
        # bucket boundaries, z-score statistics, comparisons) moves trips across buckets
        # (docs/edge.md). The debugger calibrates once; the quantizer then skips every node
        # of the calibrated model that is not one of the network's.
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=converter.representative_dataset
        )
        denied = float32_nodes(debugger.calibrated_model)
        if len(denied) == _operator_outputs(debugger.calibrated_model):
            raise ValueError(
                f"{saved_model_dir}: nothing to quantize in int8 (no hidden dense layer, no embedding table)"
            )
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denied)
        return strip_tensor_names(debugger.get_nondebug_quantized_model())
    return strip_tensor_names(converter.convert())


def _converter(saved_model_dir: str):
    """A converter of the `serving_raw` signature that reads the SavedModel from disk once.

    `TFLiteConverter.from_saved_model` first loads the whole SavedModel into Python
    (`tf.saved_model.load`, a large share of EdgeExport's seconds in `make bench`) only to
    list its signatures and keep its variables alive; the MLIR importer then reads the folder
    again by itself.
    The class it returns, built directly, skips that load; the signature is checked from
    the SavedModel proto instead.
    """
    from tensorflow.lite.python import lite
    from tensorflow.python.saved_model import loader_impl

    signatures = loader_impl.parse_saved_model(saved_model_dir).meta_graphs[0].signature_def
    if RAW_SIGNATURE not in signatures:
        raise ValueError(
            f"{saved_model_dir} has no '{RAW_SIGNATURE}' signature (it has {sorted(signatures)})"
        )
    return lite.TFLiteSavedModelConverterV2(
        saved_model_dir,
        {tf.saved_model.SERVING},
        [RAW_SIGNATURE],
        types.SimpleNamespace(graph_debug_info=None),
    )


def representative_trips(
    raw: Mapping[str, np.ndarray], count: int = REPRESENTATIVE_TRIPS, seed: int = 0
) -> list[dict[str, np.ndarray]]:
    """`count` seeded single-trip feature dicts drawn from `raw` (a split's raw features)."""
    size = len(next(iter(raw.values())))
    return [{k: v[i : i + 1] for k, v in raw.items()} for i in representative_rows(size, count, seed)]


def representative_rows(size: int, count: int = REPRESENTATIVE_TRIPS, seed: int = 0) -> np.ndarray:
    """The rows of a split of `size` examples that make the seeded calibration set."""
    if size < count:
        raise ValueError(f"the representative dataset needs {count} trips, the split has {size}")
    return np.random.default_rng(seed).choice(size, count, replace=False)


def _schema():
    from tensorflow.lite.python import schema_py_generated as schema

    return schema


def _read(flatbuffer: bytes):
    schema = _schema()
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))


def _op_names() -> dict[int, str]:
    return {code: name for name, code in vars(_schema().BuiltinOperator).items() if not name.startswith("_")}


def float32_nodes(flatbuffer: bytes) -> list[str]:
    """Output tensor names of every op that stays float32 in the int8 variant.

    In int8: FULLY_CONNECTED layers of more than one unit (the hidden layers) and GATHER from
    a constant rank-2 float table (an embedding). Everything else stays float32:
    - the preprocessing: coordinates against their bucket boundaries, z-scores, comparisons
      and vocabulary lookups move trips across buckets when quantized;
    - the output layer (one unit, 65 weights): an int8 logit has 256 levels over its whole
      range, which costs the probabilities their resolution: measured on the eval split,
      AUC -0.0036 and a mean per-example difference of 0.039 with it in int8, +0.0001 and
      0.0025 with it in float32, for 104 bytes.
    A GATHER of anything else (a vocabulary, a computed tensor) is preprocessing. Reads the
    flatbuffer in place (the object API would unpack every buffer and tensor).
    """
    schema, names = _schema(), _op_names()
    model = schema.Model.GetRootAsModel(flatbuffer, 0)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    codes = [names[max(c.BuiltinCode(), c.DeprecatedBuiltinCode())] for c in codes]
    denied = []
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)

        def int8(op, name: str) -> bool:
            weights = subgraph.Tensors(op.Inputs(1 if name == "FULLY_CONNECTED" else 0))  # noqa: B023
            constant = model.Buffers(weights.Buffer()).DataLength() > 0
            rank2 = weights.Type() == schema.TensorType.FLOAT32 and weights.ShapeLength() == 2
            if name == "FULLY_CONNECTED":
                return rank2 and weights.Shape(0) > 1  # weights are (units, inputs)
            return name == "GATHER" and constant and rank2

        for o in range(subgraph.OperatorsLength()):
            op = subgraph.Operators(o)
            name = codes[op.OpcodeIndex()]
            if name in INT8_OPS and int8(op, name):
                continue
            denied.extend(subgraph.Tensors(op.Outputs(k)).Name().decode() for k in range(op.OutputsLength()))
    return denied


def _operator_outputs(flatbuffer: bytes) -> int:
    """How many output tensors the ops of `flatbuffer` have (all subgraphs)."""
    model = _schema().Model.GetRootAsModel(flatbuffer, 0)
    return sum(
        model.Subgraphs(s).Operators(o).OutputsLength()
        for s in range(model.SubgraphsLength())
        for o in range(model.Subgraphs(s).OperatorsLength())
    )


def strip_tensor_names(flatbuffer: bytes) -> bytes:
    """`flatbuffer` without tensor names (the signature's input and output names stay)."""
    import flatbuffers

    model = _read(flatbuffer)
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.name = None
    builder = flatbuffers.Builder(len(flatbuffer))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def builtin_ops(flatbuffer: bytes) -> set[str]:
    """The names of the ops a TFLite flatbuffer runs (`CUSTOM` for any non-builtin, Flex included)."""
    model, names = _schema().Model.GetRootAsModel(flatbuffer, 0), _op_names()
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    return {names[max(c.BuiltinCode(), c.DeprecatedBuiltinCode())] for c in codes}
