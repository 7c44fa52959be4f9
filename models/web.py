"""The web signature: `serving_raw` in the form TensorFlow.js's stock runtime runs on every backend.

`serving_web` takes one input per raw serving feature, like `serving_raw`, and calls the same
Transform graph and network. Only what TensorFlow.js cannot run in `serving_raw` is put
differently, each exactly (the web gate holds the two signatures together on the eval split):

- strings (`features.VOCABULARY_FEATURES`) arrive as int32 codes: the position of the value
  in the vocabulary the model was trained with (shipped in the web model's metadata), -1 when
  missing, the vocabulary's length for any other value. The graph maps a code to the
  Transform's id with a numeric gather: no string op runs (the WASM backend has none).
- census tracts (`features.WIDE_INT_FEATURES`, about 1.7e10) do not fit int32, TensorFlow.js's
  widest integer: each arrives as an int32 pair [high, low] = [v // 2**24, v % 2**24]
  ([-1, -1] when missing), and the Transform's hash (`models.transform.hashed_ids`, a MINSTD
  step modulo 2**31 - 1) is computed exactly from 12-bit limbs, every intermediate below 2**24
  (WebGL computes int32 in float32, exact up to 2**24).
- every other integer is int32 (missing -1), every float float32 (missing NaN).
- no EnsureShape (TensorFlow.js has no kernel for it, tensorflow/tfjs#7690); the Transform
  graph's SparseToDense defaults are finite (`models.transform`).

The Transform outputs of the strings and tracts are computed here (the Transform ids of each
vocabulary value come from `signatures.vocabulary_codes`), so the converter prunes the
Transform graph's string ops and int64 hash from the web graph.
"""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf

from models import features

WEB_SIGNATURE = "serving_web"
# A file of every exported SavedModel (beside saved_model.pb): how a web client encodes each raw feature.
WEB_INPUTS_FILE = "web_inputs.json"
# Census tracts as [v // SPLIT_BASE, v % SPLIT_BASE]: both parts fit int32 (and float32 exactly).
SPLIT_BASE = 2**24
_LIMB = 4096  # 12-bit limbs: a product of two limbs stays below 2**24.
_MODULUS_BITS = 31  # transform.HASH_MODULUS == 2**31 - 1


def web_kind(name: str, dtype: tf.DType) -> str:
    """How raw feature `name` reaches the web model: vocabulary, split, int or float."""
    if name in features.VOCABULARY_FEATURES:
        return "vocabulary"
    if name in features.WIDE_INT_FEATURES:
        return "split"
    if dtype == tf.string:
        raise ValueError(f"string feature '{name}' has no web encoding (not in VOCABULARY_FEATURES)")
    return "float" if dtype.is_floating else "int"


def web_input_specs(serving_spec: dict) -> dict[str, tf.TensorSpec]:
    """One TensorSpec per raw serving feature, in the web model's dtypes (int32/float32 only)."""
    specs = {}
    for name, spec in sorted(serving_spec.items()):
        kind = web_kind(name, spec.dtype)
        shape = [None, 2] if kind == "split" else [None]
        specs[name] = tf.TensorSpec(shape, tf.float32 if kind == "float" else tf.int32, name=name)
    return specs


def _normalize(limbs: list[tf.Tensor]) -> list[tf.Tensor]:
    """Carry each limb over `_LIMB` into the next; the last limb keeps what is left."""
    out, carry = [], tf.zeros_like(limbs[0])
    for i, limb in enumerate(limbs):
        total = limb + carry
        if i == len(limbs) - 1:
            out.append(total)
        else:
            out.append(tf.math.floormod(total, _LIMB))
            carry = tf.math.floordiv(total, _LIMB)
    return out


def _fold(limbs: list[tf.Tensor]) -> list[tf.Tensor]:
    """One step of reduction modulo 2**31 - 1 (2**31 == 1 modulo it) of 3 limbs."""
    x0, x1, x2 = _normalize(limbs)
    top = 2 ** (_MODULUS_BITS - 24)  # 2**31 = top * _LIMB**2
    return [x0 + tf.math.floordiv(x2, top), x1, tf.math.floormod(x2, top)]


def _reduced(limbs: list[tf.Tensor]) -> list[tf.Tensor]:
    """The residue modulo 2**31 - 1 of 3 limbs (value below 2**47), normalized, in [0, 2**31 - 1)."""
    for _ in range(3):  # < 2**47 -> < 2**31 + 2**16 -> <= 2**31 -> < 2**31
        limbs = _fold(limbs)
    x0, x1, x2 = _normalize(limbs)
    top = 2 ** (_MODULUS_BITS - 24)
    is_modulus = (x0 == _LIMB - 1) & (x1 == _LIMB - 1) & (x2 == top - 1)
    zero = tf.zeros_like(x0)
    return [tf.where(is_modulus, zero, x) for x in (x0, x1, x2)]


def exact_hashed_ids(pair: tf.Tensor, buckets: int) -> tf.Tensor:
    """`transform.hashed_ids` of v given as int32 [N, 2] = [v // 2**24, v % 2**24]; [-1, -1] missing.

    Every intermediate stays below 2**24, so int32 and float32 arithmetic (WebGL's) agree
    exactly. Values must be below 2**47 (tracts are about 2**34).
    """
    from models.transform import HASH_MODULUS, HASH_MULTIPLIER

    assert HASH_MODULUS == 2**_MODULUS_BITS - 1, "limb arithmetic is modulo 2**31 - 1"
    assert buckets <= _LIMB, "the bucket residue is taken from limbs below 2**12"
    high, low = pair[:, 0], pair[:, 1]
    missing = high < 0
    high, low = tf.maximum(high, 0), tf.maximum(low, 0)
    value = _reduced([tf.math.floormod(low, _LIMB), tf.math.floordiv(low, _LIMB), high])
    k0, k1 = HASH_MULTIPLIER % _LIMB, HASH_MULTIPLIER // _LIMB
    assert k1 < _LIMB
    x0, x1, x2 = value
    y0, y1, y2, y3 = _normalize([x0 * k0, x0 * k1 + x1 * k0, x1 * k1 + x2 * k0, x2 * k1])
    # y3 * _LIMB**3 == (y3 * _LIMB / 2**7) * 2**31 == y3 * 32 modulo 2**31 - 1.
    top = 2 ** (_MODULUS_BITS - 24)
    y0 = y0 + y3 * (_LIMB // top)
    x0, x1, x2 = _reduced([y0, y1, y2])
    # mixed mod buckets, from the limbs: (x2 * L**2 + x1 * L + x0) mod buckets.
    square, single = (_LIMB * _LIMB) % buckets, _LIMB % buckets
    bucket = tf.math.floormod(
        tf.math.floormod(x2 * square, buckets) + tf.math.floormod(x1 * single, buckets) + x0, buckets
    )
    return tf.where(missing, tf.zeros_like(bucket), bucket + 1)


def _vocabulary_ids(code: tf.Tensor, table: dict) -> tf.Tensor:
    """Transform ids from int32 codes: -1 missing, 0..n-1 a value, anything else unknown."""
    count = len(table["values"])
    extended = tf.constant(table["ids"] + [table["unknown_id"], table["missing_id"]], tf.int64)
    index = tf.where(code == -1, count + 1, tf.where((code < 0) | (code >= count), count, code))
    return tf.gather(extended, index)


def web_raw_features(inputs: dict[str, tf.Tensor], serving_spec: dict) -> dict:
    """Web inputs -> what `tf.io.parse_example` would give, the strings and tracts left empty.

    Like `signatures.raw_features_as_parsed` without EnsureShape: a missing value (NaN, -1) is
    an absent one. The strings and tracts are given as absent everywhere: their Transform
    outputs are replaced by `web_transformed`, so the graph that reads them is pruned.
    """
    names = sorted(inputs)
    batch = tf.shape(inputs[names[0]], out_type=tf.int64)[0]
    dense_shape = tf.stack([batch, tf.constant(1, tf.int64)])
    parsed = {}
    for name in names:
        spec = serving_spec[name]
        kind = web_kind(name, spec.dtype)
        if kind in ("vocabulary", "split"):
            parsed[name] = tf.SparseTensor(
                indices=tf.zeros([0, 2], tf.int64), values=tf.zeros([0], spec.dtype), dense_shape=dense_shape
            )
            continue
        value = inputs[name]
        if kind == "int":
            value = tf.cast(value, spec.dtype)
        present = tf.equal(value, value) if kind == "float" else tf.not_equal(value, features.MISSING_INT)
        if isinstance(spec, tf.io.VarLenFeature):
            rows = tf.where(present)
            parsed[name] = tf.SparseTensor(
                indices=tf.pad(rows, [[0, 0], [0, 1]]),
                values=tf.gather_nd(value, rows),
                dense_shape=dense_shape,
            )
        else:
            parsed[name] = value
    return parsed


def web_transformed(transformed: dict, inputs: dict[str, tf.Tensor], codes: dict[str, dict]) -> dict:
    """The Transform outputs with the strings' and tracts' ids computed from the web inputs."""
    out = dict(transformed)
    for key, table in codes.items():
        out[features.transformed_name(key)] = _vocabulary_ids(inputs[key], table)
    for key, buckets in features.HASHED_FEATURES.items():
        out[features.transformed_name(key)] = tf.cast(exact_hashed_ids(inputs[key], buckets), tf.int64)
    return out


def web_inputs_description(serving_spec: dict, codes: dict[str, dict]) -> list[dict]:
    """What a web client needs to encode a raw trip: name, dtype, shape, encoding, missing marker."""
    described = []
    for name, spec in web_input_specs(serving_spec).items():
        kind = web_kind(name, serving_spec[name].dtype)
        entry = {"name": name, "dtype": spec.dtype.name, "shape": [-1, 2] if kind == "split" else [-1]}
        if kind == "vocabulary":
            values = codes[name]["values"]
            entry.update(encoding="vocabulary", vocabulary=values, missing=-1, unknown=len(values))
        elif kind == "split":
            entry.update(encoding="split", base=SPLIT_BASE, missing=[-1, -1])
        elif kind == "int":
            entry.update(encoding="int", missing=features.MISSING_INT)
        else:
            entry.update(encoding="float", missing="NaN")
        described.append(entry)
    return described


def encode(raw: dict[str, np.ndarray], described: list[dict]) -> dict[str, np.ndarray]:
    """Raw feature columns (serving_raw's, markers included) -> the web model's inputs.

    The same encoding as the page's `encode.js` (serving/web/): the tests hold them together.
    """
    out = {}
    for entry in described:
        name, values = entry["name"], np.asarray(raw[entry["name"]])
        if entry["encoding"] == "vocabulary":
            index = {v: i for i, v in enumerate(entry["vocabulary"])}
            text = [v.decode() if isinstance(v, bytes) else str(v) for v in values]
            out[name] = np.array(
                [-1 if t == features.MISSING_STRING else index.get(t, entry["unknown"]) for t in text],
                np.int32,
            )
        elif entry["encoding"] == "split":
            v = values.astype(np.int64)
            pair = np.stack([v // SPLIT_BASE, v % SPLIT_BASE], axis=1)
            pair[v < 0] = -1
            out[name] = pair.astype(np.int32)
        elif entry["encoding"] == "int":
            out[name] = values.astype(np.int32)
        else:
            out[name] = values.astype(np.float32)
    return out


def dumps_description(described: list[dict]) -> str:
    """The web inputs' description as the JSON the SavedModel carries (WEB_INPUTS_FILE)."""
    return json.dumps({"signature": WEB_SIGNATURE, "inputs": described}, indent=2, sort_keys=True)
