// Raw trips -> the web model's inputs, as the model's web inputs description says
// (assets.extra/web_inputs.json, written by models/web.py `web_inputs_description`).
//
// The twin of models/web.py `encode()`; tests/unit/test_web_browser.py holds the two together.
// No dependencies: it runs in the browser (the web gate's page) and under plain node.
//
// Encodings, by the description's `encoding`:
//   vocabulary: the value's position in `vocabulary`; null or "" (missing) -> -1;
//               any other value -> `unknown`.
//   split:      an integer v (a census tract, above int32) -> int32 [v // base, v % base];
//               null or negative (missing) -> [-1, -1]. JS numbers hold integers exactly
//               up to 2**53, far above any tract.
//   int:        int32; null -> -1.
//   float:      float32; null -> NaN.

function vocabularyCodes(values, spec) {
  const index = new Map(spec.vocabulary.map((value, i) => [value, i]));
  const codes = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (value === null || value === undefined || value === '') {
      codes[i] = -1;
    } else {
      const code = index.get(String(value));
      codes[i] = code === undefined ? spec.unknown : code;
    }
  }
  return codes;
}

function splitPairs(values, spec) {
  const pairs = new Int32Array(2 * values.length);
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    // Python's encode truncates to int64 first: so does this.
    const v = value === null || value === undefined ? -1 : Math.trunc(Number(value));
    if (!(v >= 0)) {
      pairs[2 * i] = -1;
      pairs[2 * i + 1] = -1;
    } else {
      const high = Math.floor(v / spec.base);
      pairs[2 * i] = high;
      pairs[2 * i + 1] = v - high * spec.base;
    }
  }
  return pairs;
}

function orMissing(values, missing) {
  return Array.from(values, (v) => (v === null || v === undefined ? missing : v));
}

/**
 * Raw trip columns -> {input name: {values: TypedArray, shape, dtype}}, no TensorFlow.js needed.
 *
 * @param {Object<string, Array>} raw one array per raw feature (null marks a missing value).
 * @param {Array<Object>} inputs the web inputs description (one entry per model input).
 */
export function encodeArrays(raw, inputs) {
  const out = {};
  let rows = null;
  for (const spec of inputs) {
    const values = raw[spec.name];
    if (values === undefined || values === null) {
      throw new Error(`raw feature '${spec.name}' is missing (the model takes ${inputs.map((s) => s.name)})`);
    }
    if (rows === null) rows = values.length;
    if (values.length !== rows) {
      throw new Error(`raw feature '${spec.name}' has ${values.length} values, '${inputs[0].name}' ${rows}`);
    }
    const n = values.length;
    if (spec.encoding === 'vocabulary') {
      out[spec.name] = { values: vocabularyCodes(values, spec), shape: [n], dtype: 'int32' };
    } else if (spec.encoding === 'split') {
      out[spec.name] = { values: splitPairs(values, spec), shape: [n, 2], dtype: 'int32' };
    } else if (spec.encoding === 'int') {
      out[spec.name] = { values: Int32Array.from(orMissing(values, -1)), shape: [n], dtype: 'int32' };
    } else if (spec.encoding === 'float') {
      out[spec.name] = { values: Float32Array.from(orMissing(values, NaN)), shape: [n], dtype: 'float32' };
    } else {
      throw new Error(`raw feature '${spec.name}': unknown encoding '${spec.encoding}'`);
    }
  }
  return out;
}

/** Raw trip columns -> {input name: tf.Tensor}, ready for `model.executeAsync`. */
export function encodeColumns(raw, inputs, tf) {
  const arrays = encodeArrays(raw, inputs);
  const tensors = {};
  for (const [name, { values, shape, dtype }] of Object.entries(arrays)) {
    tensors[name] = tf.tensor(values, shape, dtype);
  }
  return tensors;
}

/** One trip ({feature: raw value}; an absent feature is a missing one) -> a batch of one. */
export function encodeTrip(trip, inputs, tf) {
  const raw = {};
  for (const spec of inputs) {
    const value = trip[spec.name];
    raw[spec.name] = [value === undefined ? null : value];
  }
  return encodeColumns(raw, inputs, tf);
}
