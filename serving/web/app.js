// The /web/ page's logic (index.html; serving/web_page.py serves both).
//
// 1. /web/info.json: the version the server serves right now, its web model (or why there is
//    none) and the form's fields (from the schema).
// 2. TensorFlow.js on the backend asked for (?backend=webgl|wasm|cpu; TF.js's own choice
//    without one), then the web model and the encoder pushed with it
//    (/web/model/<version>/model.json and encode.js).
// 3. /web/trips.json: the newest span's trips as raw columns, scored in one batch.
// 4. The form: one trip, scored on submit; a table row's "use" button copies its trip into it.
// 5. Every few seconds, /web/info.json again: a newly served version is announced, not loaded.
//
// Everything is scored here, in the browser; the REST API is never asked. What a test reads:
// #status[data-state] (loading, ready, no-model, error), #backend (tf.getBackend()),
// #trip-score[data-probability, data-seq] and each table row's data-probability.

const tf = window.tf;
const TABLE_COLUMNS = [
  ['trip_start_month', 'month'],
  ['trip_start_day', 'day'],
  ['trip_start_hour', 'hour'],
  ['pickup_community_area', 'from area'],
  ['dropoff_community_area', 'to area'],
  ['trip_miles', 'miles'],
  ['trip_seconds', 'seconds'],
  ['fare', 'fare'],
  ['payment_type', 'payment'],
  ['company', 'company'],
];

const VERSION_CHECK_MS = 10000;

const page = { info: null, fields: [], model: null, encodeColumns: null, inputs: null, trips: null, seq: 0 };

function element(id) {
  return document.getElementById(id);
}

function setStatus(state, text) {
  const status = element('status');
  status.dataset.state = state;
  status.textContent = text;
}

async function getJson(url) {
  const response = await fetch(url, { cache: 'no-store' });
  let body = {};
  try {
    body = await response.json();
  } catch (error) {
    throw new Error(`${url}: HTTP ${response.status}, not JSON`);
  }
  if (!response.ok) throw new Error(body.error || `${url}: HTTP ${response.status}`);
  return body;
}

// The backend asked for, or TF.js's choice; what actually runs is tf.getBackend().
async function startBackend(wanted) {
  if (tf.wasm) tf.wasm.setWasmPaths('/web/tfjs/');
  if (wanted) {
    let started = false;
    try {
      started = await tf.setBackend(wanted);
    } catch (error) {
      console.error(`backend ${wanted}:`, error);
    }
    if (!started) throw new Error(`TF.js backend '${wanted}' could not start in this browser`);
  }
  await tf.ready();
  element('backend').textContent = tf.getBackend();
  document.body.dataset.backend = tf.getBackend();
  return tf.getBackend();
}

// Encode raw columns ({feature: [value or null]}), run the model, read its one output back.
async function predict(columns) {
  const tensors = page.encodeColumns(columns, page.inputs, tf);
  let output = null;
  try {
    output = await page.model.executeAsync(tensors);
    if (Array.isArray(output)) throw new Error(`the web model has ${output.length} outputs, expected one`);
    return Array.from(await output.data());
  } finally {
    tf.dispose(Object.values(tensors));
    if (output !== null) tf.dispose(output);
  }
}

// ------------------------------------------------------------------ the form

function fieldInput(field) {
  let input;
  if (field.kind === 'string' && field.values.length) {
    input = document.createElement('select');
    input.append(new Option('(missing)', ''));
    for (const value of field.values) input.append(new Option(value, value));
  } else {
    input = document.createElement('input');
    if (field.kind === 'string') {
      input.type = 'text';
    } else {
      input.type = 'number';
      input.step = field.kind === 'int' ? '1' : 'any';
      if (field.min !== undefined) input.min = String(field.min);
      if (field.max !== undefined) input.max = String(field.max);
    }
    input.placeholder = 'missing';
  }
  input.id = `field-${field.name}`;
  input.name = field.name;
  return input;
}

function buildForm(fields) {
  const form = element('trip-form');
  const actions = form.querySelector('.actions');
  for (const field of fields) {
    const label = document.createElement('label');
    const name = document.createElement('span');
    name.textContent = field.name;
    if (field.always_present) name.className = 'always';
    const range = [field.min, field.max].some((v) => v !== undefined)
      ? ` (${field.min ?? ''}…${field.max ?? ''})`
      : '';
    name.title = `${field.kind}${range}`;
    label.append(name, fieldInput(field));
    form.insertBefore(label, actions);
  }
}

// The form's trip as raw columns of one value each; a blank field is a missing value (null).
function formColumns() {
  const columns = {};
  for (const field of page.fields) {
    const text = element(`field-${field.name}`).value.trim();
    let value = null;
    if (text !== '') value = field.kind === 'string' ? text : Number(text);
    columns[field.name] = [value];
  }
  return columns;
}

function fillForm(index) {
  for (const field of page.fields) {
    const input = element(`field-${field.name}`);
    const value = page.trips.columns[field.name][index];
    const text = value === null ? '' : String(value);
    if (input.tagName === 'SELECT' && text !== '' && ![...input.options].some((o) => o.value === text)) {
      input.append(new Option(`${text} (not in the schema)`, text));
    }
    input.value = text;
  }
  element('trip-score').textContent = '–';
}

async function scoreForm(event) {
  event.preventDefault();
  const out = element('trip-score');
  out.dataset.state = 'scoring';
  try {
    const [probability] = await predict(formColumns());
    page.seq += 1;
    out.textContent = `${probability.toFixed(4)} (${probability >= 0.5 ? 'a big tipper' : 'not a big tipper'})`;
    out.dataset.probability = String(probability);
    out.dataset.state = 'done';
  } catch (error) {
    page.seq += 1;
    out.textContent = `failed: ${error.message}`;
    delete out.dataset.probability;
    out.dataset.state = 'error';
  }
  out.dataset.seq = String(page.seq);
}

// ------------------------------------------------------------------ the trips table

function cell(value, kind) {
  const td = document.createElement('td');
  if (value === null || value === undefined) {
    td.textContent = '–';
    td.className = 'missing';
  } else {
    td.textContent = kind === 'float' ? Number(value).toFixed(2) : String(value);
    if (kind === 'string') td.className = 'text';
    td.title = String(value);
  }
  return td;
}

function renderTrips(trips) {
  const kinds = Object.fromEntries(page.fields.map((f) => [f.name, f.kind]));
  const head = document.createElement('tr');
  for (const title of ['#', ...TABLE_COLUMNS.map(([, t]) => t), 'big tipper', 'score', '']) {
    const th = document.createElement('th');
    th.textContent = title;
    head.append(th);
  }
  element('trips').tHead.replaceChildren(head);
  const rows = [];
  for (let i = 0; i < trips.count; i++) {
    const tr = document.createElement('tr');
    tr.dataset.index = String(i);
    tr.append(cell(i + 1, 'int'));
    for (const [name] of TABLE_COLUMNS) tr.append(cell(trips.columns[name][i], kinds[name]));
    const label = trips.big_tipper[i];
    tr.append(cell(label === null ? null : label ? 'yes' : 'no', 'string'));
    const score = cell(null, 'float');
    score.classList.add('score');
    tr.append(score);
    const use = document.createElement('button');
    use.type = 'button';
    use.textContent = 'use';
    use.title = 'copy this trip into the form';
    use.addEventListener('click', () => fillForm(i));
    const td = document.createElement('td');
    td.append(use);
    tr.append(td);
    rows.push(tr);
  }
  element('trips').tBodies[0].replaceChildren(...rows);
}

async function scoreTrips() {
  const probabilities = await predict(page.trips.columns);
  const rows = element('trips').tBodies[0].rows;
  probabilities.forEach((p, i) => {
    const score = rows[i].querySelector('td.score');
    score.textContent = p.toFixed(4);
    score.classList.remove('missing');
    rows[i].dataset.probability = String(p);
    rows[i].classList.toggle('big', p >= 0.5);
  });
}

// ------------------------------------------------------------------ start

async function loadTrips() {
  const source = element('trips-source');
  try {
    page.trips = await getJson('/web/trips.json');
  } catch (error) {
    source.textContent = `No trips to show: ${error.message}`;
    return false;
  }
  const t = page.trips;
  source.textContent =
    `The first ${t.count} trips of span ${t.span} in ${t.data_root} (${t.source}); ` +
    'the big tipper column is the label, the score the web model\'s.';
  renderTrips(t);
  return true;
}

function kib(bytes) {
  return Number.isFinite(bytes) ? `, ${Math.round(bytes / 1024)} KiB` : '';
}

async function main() {
  const wanted = new URLSearchParams(window.location.search).get('backend') || '';
  element('backend-choice').value = wanted;
  element('backend-choice').addEventListener('change', (event) => {
    const query = event.target.value ? `?backend=${encodeURIComponent(event.target.value)}` : '';
    window.location.search = query;
  });
  page.info = await getJson('/web/info.json');
  const info = page.info;
  page.fields = info.fields;
  buildForm(info.fields);
  element('clear').addEventListener('click', () => element('trip-form').reset());
  element('trip-form').addEventListener('submit', scoreForm);
  const web = info.web_model;
  element('served').textContent =
    `The server serves ${info.model} version ${info.version} ` +
    `(REST: POST ${info.predict_url}).` +
    (web.available ? ` Web model: ${web.url}${kib(web.metadata.bytes)}.` : '');
  const haveTrips = loadTrips();
  if (!web.available) {
    element('score').disabled = true;
    await haveTrips;
    setStatus('no-model', `Version ${info.version} has no web model: ${web.reason}. Nothing is scored here.`);
    return;
  }
  if (!tf) {
    throw new Error(`TensorFlow.js did not load from /web/tfjs/: ${info.tfjs.reason || 'see the console'}`);
  }
  setStatus('loading', `Starting TF.js ${tf.version.tfjs}…`);
  const backend = await startBackend(wanted);
  setStatus('loading', `Loading the web model of version ${info.version} on ${backend}…`);
  page.inputs = web.metadata.inputs;
  [page.model, { encodeColumns: page.encodeColumns }] = await Promise.all([
    tf.loadGraphModel(web.model_url),
    import(web.encoder_url),
  ]);
  if (await haveTrips) await scoreTrips();
  const scored = page.trips ? `${page.trips.count} trips scored` : 'no trips to score';
  setStatus(
    'ready',
    `Version ${info.version}'s web model runs here on TF.js ${tf.version.tfjs} (${backend}); ${scored}.`,
  );
}

// The server may swap versions under the page (a push, a rollback): say so, never swap silently.
async function watchVersion() {
  try {
    const { version } = await getJson('/web/info.json');
    if (page.info && version !== page.info.version) {
      element('served').textContent =
        `The server now serves version ${version}; this page still runs version ${page.info.version}: ` +
        'reload it to score with the new one.';
      element('served').classList.add('stale');
      return;
    }
  } catch (error) {
    console.warn('version check:', error);
  }
  setTimeout(watchVersion, VERSION_CHECK_MS);
}

main()
  .catch((error) => {
    console.error(error);
    setStatus('error', `The page failed: ${error.message}`);
  })
  .finally(() => setTimeout(watchVersion, VERSION_CHECK_MS));
