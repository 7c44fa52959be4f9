// Run a TF.js graph model in headless Chromium: node serving/web/drive.mjs CONFIG.json OUT.json
//
// CONFIG.json: {model_dir, data, backends, batch_size, single, timing, timeout_s, chromium, output}
//   model_dir  a TF.js graph model (model.json and its weight shards)
//   data       a JSON file {raw: trip columns, inputs: the web inputs description}
//   chromium   the browser to drive (else $CHROMIUM, else `chromium` on PATH)
//   the rest   as gate.js's runWebModel takes them (defaults below)
// OUT.json: {browser, runs: {backend: gate.js's run}, page_errors}, written on success only.
//
// A static server on 127.0.0.1 (a free port) serves the model, the data, TensorFlow.js from
// the repo's node_modules and this folder's page; Chromium opens gate.html and calls
// runWebModel. Exits 1 with the cause on stderr when the browser or the page fails or
// timeout_s passes; the browser and the server are closed on every path.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MODULES = path.resolve(HERE, '..', '..', 'node_modules');
const PAGE_FILES = new Set(['gate.html', 'gate.js', 'encode.js']);
const TYPES = {
  '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json', '.wasm': 'application/wasm',
};
// Software WebGL (SwiftShader): the webgl backend runs on machines without a GPU.
// One process (--single-process, no zygote): the gate runs inside the pipeline's process tree,
// whose peak memory has a bar; Chromium's usual six processes each map the same libraries,
// 1.3 GiB of RSS between them for one page against 0.57 GiB in one process, with the same
// answers and seconds (benchmarks/README.md, "The web gate's memory").
const CHROMIUM_ARGS = [
  '--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist',
  '--disable-dev-shm-usage', '--single-process', '--no-zygote',
];
const DEFAULTS = { backends: ['cpu', 'wasm', 'webgl'], batch_size: 512, single: 0, timing: 0, timeout_s: 300 };
const PAGE_START_MS = 60_000;
const CLOSE_MS = 10_000;

class DriveError extends Error {}

function readConfig(configPath) {
  const config = { ...DEFAULTS, ...JSON.parse(fs.readFileSync(configPath, 'utf8')) };
  for (const key of ['model_dir', 'data']) {
    if (!config[key]) throw new DriveError(`${configPath}: '${key}' is required`);
  }
  const counts = { batch_size: 1, single: 0, timing: 0 };
  for (const [key, least] of Object.entries(counts)) {
    if (!Number.isInteger(config[key]) || config[key] < least) {
      throw new DriveError(`${configPath}: '${key}' must be an integer of at least ${least}, not ${config[key]}`);
    }
  }
  if (!Array.isArray(config.backends) || config.backends.length === 0) {
    throw new DriveError(`${configPath}: 'backends' must name at least one TF.js backend`);
  }
  if (!(config.timeout_s > 0)) throw new DriveError(`${configPath}: 'timeout_s' must be positive`);
  config.model_dir = path.resolve(config.model_dir);
  if (!fs.existsSync(path.join(config.model_dir, 'model.json'))) {
    throw new DriveError(`no TF.js model in ${config.model_dir} (model.json is missing)`);
  }
  if (!fs.existsSync(config.data)) throw new DriveError(`data file ${config.data} does not exist`);
  return config;
}

function findChromium(config) {
  const name = config.chromium || process.env.CHROMIUM || 'chromium';
  const candidates = name.includes('/')
    ? [name]
    : (process.env.PATH || '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, name));
  for (const candidate of candidates) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not this one
    }
  }
  throw new DriveError(`Chromium not found ('${name}'): install Debian's chromium (make setup) or set CHROMIUM`);
}

async function loadPuppeteer() {
  const bundle = path.join(MODULES, '@tensorflow', 'tfjs', 'dist', 'tf.min.js');
  try {
    fs.accessSync(bundle);
    return (await import('puppeteer-core')).default;
  } catch (error) {
    throw new DriveError(`the npm packages are not installed in ${MODULES} (${error.message}): run \`make setup\``);
  }
}

// The file behind a URL path, or null: only the routes below, never outside their folders.
function fileFor(urlPath, config) {
  if (urlPath === '/data.json') return path.resolve(config.data);
  const routes = [
    ['/model/', config.model_dir],
    ['/tfjs/', path.join(MODULES, '@tensorflow', 'tfjs', 'dist')],
    ['/tfjs-wasm/', path.join(MODULES, '@tensorflow', 'tfjs-backend-wasm', 'dist')],
  ];
  for (const [prefix, dir] of routes) {
    if (urlPath.startsWith(prefix)) {
      const file = path.resolve(dir, urlPath.slice(prefix.length));
      return file.startsWith(dir + path.sep) ? file : null;
    }
  }
  const name = urlPath.slice(1);
  return PAGE_FILES.has(name) ? path.join(HERE, name) : null;
}

function startServer(config) {
  const server = http.createServer((request, response) => {
    let file = null;
    try {
      file = fileFor(decodeURIComponent(new URL(request.url, 'http://localhost').pathname), config);
    } catch {
      // a malformed URL: 404 below
    }
    const notFound = () => {
      console.error(`drive: 404 ${request.url}`);
      response.writeHead(404);
      response.end();
    };
    if (file === null) return notFound();
    fs.readFile(file, (error, body) => {
      if (error) return notFound();
      response.writeHead(200, {
        'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream',
        // Each backend loads the model afresh: load_ms never measures the browser's cache.
        'Cache-Control': 'no-store',
      });
      response.end(body);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

async function runPage(browser, port, config, pageErrors) {
  const page = await browser.newPage();
  page.on('pageerror', (error) => {
    pageErrors.push(error.message);
    console.error(`page error: ${error.message}`);
  });
  page.on('console', (message) => {
    if (['error', 'warn'].includes(message.type())) console.error(`page ${message.type()}: ${message.text()}`);
  });
  await page.goto(`http://127.0.0.1:${port}/gate.html`, { waitUntil: 'load', timeout: PAGE_START_MS });
  try {
    await page.waitForFunction('typeof window.runWebModel === "function"', { timeout: PAGE_START_MS });
  } catch {
    throw new DriveError(`the gate page did not start (page errors: ${pageErrors.join('; ') || 'none'})`);
  }
  const pageConfig = {
    backends: config.backends, batch_size: config.batch_size, single: config.single,
    timing: config.timing, output: config.output || null,
  };
  try {
    return await page.evaluate((c) => window.runWebModel(c), pageConfig);
  } catch (error) {
    throw new DriveError(`runWebModel failed: ${error.message} (page errors: ${pageErrors.join('; ') || 'none'})`);
  }
}

async function closeBrowser(browser) {
  if (browser === null) return;
  const closed = browser.close().then(() => true, () => false);
  const timedOut = new Promise((resolve) => setTimeout(() => resolve(false), CLOSE_MS).unref());
  if (!(await Promise.race([closed, timedOut]))) browser.process()?.kill('SIGKILL');
}

async function drive(config, outPath) {
  const puppeteer = await loadPuppeteer();
  const executablePath = findChromium(config);
  const server = await startServer(config);
  const pageErrors = [];
  let browser = null;
  let timer = null;
  const work = (async () => {
    try {
      browser = await puppeteer.launch({
        executablePath, headless: true, args: CHROMIUM_ARGS, protocolTimeout: config.timeout_s * 1000,
      });
    } catch (error) {
      throw new DriveError(`could not launch Chromium (${executablePath}): ${error.message}`);
    }
    const version = await browser.version();
    const runs = await runPage(browser, server.address().port, config, pageErrors);
    return { browser: version, runs, page_errors: pageErrors };
  })();
  work.catch(() => {}); // on a timeout nobody waits for it any more
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new DriveError(`timed out after ${config.timeout_s} s (page errors: ${pageErrors.join('; ') || 'none'})`)),
      config.timeout_s * 1000,
    );
  });
  try {
    const result = await Promise.race([work, timeout]);
    fs.writeFileSync(outPath, JSON.stringify(result));
  } finally {
    clearTimeout(timer);
    await closeBrowser(browser);
    server.closeAllConnections();
    server.close();
  }
}

async function main() {
  const [configPath, outPath] = process.argv.slice(2);
  if (!configPath || !outPath) throw new DriveError('usage: node serving/web/drive.mjs CONFIG.json OUT.json');
  await drive(readConfig(configPath), outPath);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`drive.mjs: ${error instanceof DriveError ? error.message : error.stack || error}`);
    process.exit(1);
  },
);
