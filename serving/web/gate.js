// The web gate's page logic: run a TF.js graph model on the gate's trips, backend by backend.
//
// window.runWebModel(config) reads /data.json ({raw: trip columns, inputs: the web inputs
// description}) and loads /model/model.json on each of config.backends. Per backend it
// returns what serving/web_browser.py reads:
//   backend      the backend TF.js actually ran (it can differ from the one asked for)
//   load_ms      loading model.json and its weights
//   run_ms       every trip, in batches of config.batch_size (encoding included)
//   predictions  one answer per trip, in trip order (null where not finite)
//   singles      the first config.single trips again, one at a time (batch invariance)
//   latency_ms   with config.timing = R > 0: {trips: {p50, p99}} over R calls on the
//                first 1 and first 64 trips, each call encoding, running and reading back
//   error        why the backend failed (then the other fields are what it got to), or null
// A backend's failure is reported in its entry; it never stops the other backends.

import { encodeColumns } from './encode.js';

const tf = window.tf;
tf.wasm.setWasmPaths('/tfjs-wasm/');

const LATENCY_TRIPS = [1, 64];

function sliceColumns(raw, start, end) {
  const out = {};
  for (const name of Object.keys(raw)) out[name] = raw[name].slice(start, end);
  return out;
}

// Encode, run and read back one batch; every tensor made is disposed.
async function predict(model, raw, inputs, output) {
  const tensors = encodeColumns(raw, inputs, tf);
  let result = null;
  try {
    result = await model.executeAsync(tensors, output);
    if (Array.isArray(result)) {
      throw new Error(`the model has ${result.length} outputs: name the one to read (config.output)`);
    }
    return await result.data();
  } finally {
    tf.dispose(Object.values(tensors));
    if (result !== null) tf.dispose(result);
  }
}

function percentile(sorted, p) {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function latencies(model, raw, inputs, output, trips, repetitions) {
  const out = {};
  for (const size of LATENCY_TRIPS) {
    const count = Math.min(size, trips);
    if (count === 0 || out[count] !== undefined) continue;
    const batch = sliceColumns(raw, 0, count);
    await predict(model, batch, inputs, output); // warm-up: shaders, kernels for this shape
    const times = [];
    for (let i = 0; i < repetitions; i++) {
      const start = performance.now();
      await predict(model, batch, inputs, output);
      times.push(performance.now() - start);
    }
    times.sort((a, b) => a - b);
    out[count] = { p50: percentile(times, 50), p99: percentile(times, 99) };
  }
  return out;
}

function finiteOrNull(values) {
  return Array.from(values, (v) => (Number.isFinite(v) ? v : null));
}

async function runBackend(name, data, config) {
  const run = {
    backend: null, load_ms: null, run_ms: null, predictions: [], singles: [], latency_ms: null, error: null,
  };
  const { raw, inputs } = data;
  const trips = raw[inputs[0].name].length;
  const output = config.output || undefined;
  let model = null;
  try {
    const started = await tf.setBackend(name);
    await tf.ready();
    run.backend = tf.getBackend();
    if (!started) throw new Error(`backend '${name}' did not start (TF.js is on '${run.backend}')`);
    const loadStart = performance.now();
    model = await tf.loadGraphModel('/model/model.json');
    run.load_ms = performance.now() - loadStart;

    const runStart = performance.now();
    const predictions = [];
    for (let start = 0; start < trips; start += config.batch_size) {
      const answers = await predict(model, sliceColumns(raw, start, start + config.batch_size), inputs, output);
      for (const answer of answers) predictions.push(answer);
    }
    run.run_ms = performance.now() - runStart;
    run.predictions = finiteOrNull(predictions);

    const singles = [];
    for (let i = 0; i < Math.min(config.single, trips); i++) {
      for (const answer of await predict(model, sliceColumns(raw, i, i + 1), inputs, output)) singles.push(answer);
    }
    run.singles = finiteOrNull(singles);

    if (config.timing > 0) run.latency_ms = await latencies(model, raw, inputs, output, trips, config.timing);
  } catch (error) {
    run.error = String((error && error.message) || error);
    if (run.backend === null) {
      try {
        run.backend = tf.getBackend() || null;
      } catch {
        // No backend at all could start: the error above says why.
      }
    }
  } finally {
    if (model !== null) model.dispose();
  }
  return run;
}

window.runWebModel = async (config) => {
  const response = await fetch('/data.json');
  if (!response.ok) throw new Error(`/data.json: HTTP ${response.status}`);
  const data = await response.json();
  const runs = {};
  for (const backend of config.backends) runs[backend] = await runBackend(backend, data, config);
  return runs;
};
