"""The TensorFlow.js converter, run on the `serving_web` signature of a SavedModel.

The converter (`tensorflowjs` 4.22, installed without its dependencies: its resolver would
pull TensorFlow Decision Forests, JAX, Flax and a newer TensorFlow Hub, none of which a
graph-model conversion uses) imports those packages at module level. They are stood in for by
empty modules while the converter module is imported, then taken out of `sys.modules` again,
so no other code of the process ever sees a stand-in.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import sys
import types

from models.web import WEB_SIGNATURE

# Imported by tensorflowjs.converters at module level, unused by a SavedModel -> graph model run.
_STAND_INS = (
    "tensorflow_hub",
    "tensorflow_decision_forests",
    "jax",
    "jax.experimental",
    "jax.experimental.jax2tf",
)
# Ops that have no kernel on some TensorFlow.js backend for the inputs they would get here:
# their presence means the web signature is no longer web-clean (models/web.py).
REFUSED_OPS = frozenset(
    {"EnsureShape", "StringToHashBucketFast", "AsString", "HashTableV2", "LookupTableFindV2"}
)
SHARD_BYTES = 4 * 1024 * 1024
log = logging.getLogger(__name__)


class WebConversionError(ValueError):
    """The SavedModel's web signature cannot be converted, or converts to a graph TF.js cannot run."""


def _converter_module():
    """Tensorflowjs's SavedModel converter, imported with stand-ins for what it does not use."""
    name = "tensorflowjs.converters.tf_saved_model_conversion_v2"
    if name in sys.modules:
        return sys.modules[name]
    added = []
    for stand_in in _STAND_INS:
        if stand_in not in sys.modules:
            sys.modules[stand_in] = types.ModuleType(stand_in)
            added.append(stand_in)
    if "jax.experimental.jax2tf" in added:
        sys.modules["jax.experimental"].jax2tf = sys.modules["jax.experimental.jax2tf"]
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise WebConversionError(
            f"the TensorFlow.js converter is not installed ({error}): run `make setup`"
        ) from error
    finally:
        for stand_in in added:
            sys.modules.pop(stand_in, None)


def convert(saved_model_dir: str, out_dir: str, signature: str = WEB_SIGNATURE) -> dict:
    """Convert `signature` of `saved_model_dir` to a TF.js graph model in `out_dir`.

    Returns the graph's op counts. Raises WebConversionError when the signature is missing,
    the converter fails, or the graph holds an op in REFUSED_OPS or a string constant.
    """
    from tensorflow.python.saved_model import loader_impl

    signatures = loader_impl.parse_saved_model(saved_model_dir).meta_graphs[0].signature_def
    if signature not in signatures:
        raise WebConversionError(
            f"{saved_model_dir} has no '{signature}' signature (it has {sorted(signatures)})"
        )
    converter = _converter_module()
    printed = io.StringIO()  # the converter print()s a line per int64 weight it narrows
    try:
        with contextlib.redirect_stdout(printed):
            converter.convert_tf_saved_model(
                saved_model_dir,
                out_dir,
                signature_def=signature,
                saved_model_tags="serve",
                strip_debug_ops=True,
                weight_shard_size_bytes=SHARD_BYTES,
            )
    except (ValueError, RuntimeError, KeyError) as error:
        raise WebConversionError(f"the TF.js converter failed on {saved_model_dir}: {error}") from error
    finally:
        if printed.getvalue():
            log.info("TensorFlow.js converter output:\n%s", printed.getvalue())
    return check_graph(out_dir)


def check_graph(out_dir: str) -> dict[str, int]:
    """Op counts of the graph model in `out_dir`; WebConversionError for an op TF.js cannot run everywhere."""
    from tfx.dsl.io import fileio

    with fileio.open(f"{out_dir}/model.json", "r") as handle:
        topology = json.load(handle)["modelTopology"]
    nodes = list(topology.get("node", []))
    for function in topology.get("library", {}).get("function", []):
        nodes.extend(function.get("nodeDef", []))
    ops: dict[str, int] = {}
    for node in nodes:
        ops[node["op"]] = ops.get(node["op"], 0) + 1
    refused = sorted(set(ops) & REFUSED_OPS)
    strings = [
        n["name"]
        for n in nodes
        if n["op"] == "Const" and n.get("attr", {}).get("dtype", {}).get("type") == "DT_STRING"
    ]
    if refused or strings:
        raise WebConversionError(
            f"the web graph in {out_dir} is not web-clean: ops {refused}, string constants {strings[:5]}"
        )
    return ops
