"""The `/web/` page of `python -m pipeline serve`, in headless Chromium, against the REST API.

A subprocess serves a copy of a run's serving directory (with a pushed web model) on a free
loopback port; node drives Chromium (puppeteer-core) through the page on each TF.js backend:
the page scores the newest span's trips and two trips typed into its form, and each score
equals the REST API's `serving_raw` answer for the same trip within 1e-5. Then a version with
no web model is pushed: the page follows the served version and says it has no web model.
Every visit leaves a screenshot (PNG) in the test's tmp folder, and in $WEB_SCREENSHOT_DIR
when that is set.

The run: the shared e2e runs' root (tests/e2e/conftest.py; or $WEB_RUN_ROOT), whose Pusher
pushed `web/<version>/`; it is read, never written (the server serves a copy of its serving
directory, and reads its ML Metadata and spans). The tests here run in file order: the second
pushes a version into that copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data.embedded import available_spans
from pipeline.config import PipelineConfig
from serving import web_browser

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
RUN_ROOT_ENV = "WEB_RUN_ROOT"
SCREENSHOT_ENV = "WEB_SCREENSHOT_DIR"
MAX_DIFFERENCE = 1e-5
# "" is TF.js's own choice; the others are asked for with ?backend=.
BACKENDS = ("", "webgl", "wasm", "cpu")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
]

# Drives Chromium through the page: per visit, waits for the page to settle, reads the table's
# scores, types each trip into the form and reads its score, copies table rows into the form
# with their "use" button and reads their scores, and takes a screenshot.
DRIVER = r"""
const fs = require('fs');
const puppeteer = require('puppeteer-core');

// Submit the form; the page's answer once it has scored (data-seq counts the answers).
async function scoreForm(page) {
  const seq = await page.$eval('#trip-score', (el) => Number(el.dataset.seq || 0));
  await page.click('#score');
  await page.waitForFunction(
    (before) => Number(document.querySelector('#trip-score').dataset.seq || 0) > before,
    { timeout: 60000 }, seq);
  return page.$eval('#trip-score', (el) => ({
    state: el.dataset.state,
    text: el.textContent,
    probability: el.dataset.probability === undefined ? null : Number(el.dataset.probability),
  }));
}

async function visit(browser, url, spec) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 1000 });
  const errors = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  page.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()); });
  await page.goto(url + spec.path, { waitUntil: 'load' });
  await page.waitForFunction(
    () => document.querySelector('#status').dataset.state !== 'loading', { timeout: 120000 });
  const result = await page.evaluate(() => ({
    state: document.querySelector('#status').dataset.state,
    message: document.querySelector('#status').textContent,
    served: document.querySelector('#served').textContent,
    backend: document.querySelector('#backend').textContent,
    score_disabled: document.querySelector('#score').disabled,
    table: [...document.querySelectorAll('#trips tbody tr')].map(
      (row) => (row.dataset.probability === undefined ? null : Number(row.dataset.probability))),
  }));
  result.form = [];
  for (const trip of spec.trips) {
    await page.click('#clear');
    for (const [name, value] of Object.entries(trip)) {
      const selector = `#field-${name}`;
      if (await page.$eval(selector, (el) => el.tagName) === 'SELECT') {
        await page.select(selector, value === null ? '' : String(value));
      } else if (value !== null) {
        await page.type(selector, String(value));
      }
    }
    result.form.push(await scoreForm(page));
  }
  result.used = [];
  for (const index of spec.use_rows) {
    await page.click(`#trips tbody tr:nth-child(${index + 1}) button`);
    result.used.push(await scoreForm(page));
  }
  if (spec.announce) {
    // Tell the test the page is up, then wait for the page to announce the version it pushes.
    fs.writeFileSync(spec.announce.marker, 'ready');
    await page.waitForFunction(
      (text) => document.querySelector('#served').textContent.includes(text),
      { timeout: 90000 }, spec.announce.text);
    result.served = await page.$eval('#served', (el) => el.textContent);
  }
  await page.screenshot({ path: spec.screenshot, fullPage: true });
  result.errors = errors;
  await page.close();
  return result;
}

(async () => {
  const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const browser = await puppeteer.launch(
    { executablePath: config.chromium, headless: true, args: config.flags });
  const results = [];
  try {
    for (const spec of config.visits) results.push(await visit(browser, config.url, spec));
  } finally {
    await browser.close();
  }
  fs.writeFileSync(process.argv[3], JSON.stringify(results));
})().catch((error) => { console.error(error); process.exit(1); });
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port: int, path: str, body=None) -> tuple[int, object]:
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def get(port: int, path: str) -> tuple[int, str, bytes]:
    """GET `path`: the status, the content type and the body."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def served_version(port: int) -> int | None:
    status, body = http(port, "/v1/models/big_tipper")
    versions = body.get("model_version_status", []) if status == 200 else []
    return int(versions[0]["version"]) if versions else None


@pytest.fixture(scope="module")
def browser() -> str:
    """The Chromium binary; a loud skip when the page cannot be driven here."""
    reason = web_browser.unavailable()
    if reason:
        pytest.skip(f"THE /web/ PAGE IS NOT TESTED: {reason}")
    return web_browser.chromium_path()


@pytest.fixture(scope="module")
def web_run_root(runs) -> Path:
    """The shared e2e root (tests/e2e/conftest.py), or $WEB_RUN_ROOT: a run that pushed a web model."""
    root = Path(os.environ[RUN_ROOT_ENV]) if os.environ.get(RUN_ROOT_ENV) else runs["root"]
    web = PipelineConfig(root=root).serving_dir / "web"
    if not any(web.glob("*/model.json")):
        pytest.fail(f"no pushed web model under {web}: the run's web gate did not pass (see its summary)")
    return root


@pytest.fixture(scope="module")
def server(web_run_root, tmp_path_factory):
    """`serve` on a copy of the run's serving directory, with the run's ML Metadata and spans."""
    base = tmp_path_factory.mktemp("web-serving") / "big_tipper"
    shutil.copytree(PipelineConfig(root=web_run_root).serving_dir, base)
    port = _free_port()
    log_path = base.parent / "serve.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline",
                "serve",
                "--root",
                str(web_run_root),
                "--serving-dir",
                str(base),
            ]
            + ["--port", str(port), "--poll-s", "0.2", "--no-prediction-log"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.time() + 180
    while True:
        assert process.poll() is None, log_path.read_text()
        try:
            if served_version(port) is not None:
                break
        except OSError:
            pass
        if time.time() > deadline:
            process.kill()
            pytest.fail("serve did not come up in 180 s:\n" + log_path.read_text())
        time.sleep(0.5)
    yield port, base
    process.terminate()
    process.wait(timeout=30)


def drive(browser: str, port: int, visits: list[dict], folder: Path, during=None) -> list[dict]:
    """Run the driver on `visits` ({path, trips, use_rows, screenshot, announce?}); one reading a visit.

    With `during`, it is called once the driver has written the `announce` marker of a visit
    (that page is up), while the driver waits for the page's announcement.
    """
    folder.mkdir(parents=True, exist_ok=True)
    script, config, out = folder / "drive.cjs", folder / "config.json", folder / "out.json"
    script.write_text(DRIVER)
    settings = {
        "chromium": browser,
        "flags": CHROMIUM_FLAGS,
        "url": f"http://127.0.0.1:{port}",
        "visits": visits,
    }
    config.write_text(json.dumps(settings))
    env = {**os.environ, "NODE_PATH": str(web_browser.NODE_MODULES)}
    process = subprocess.Popen(
        ["node", str(script), str(config), str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if during is not None:
            marker = Path(next(v["announce"]["marker"] for v in visits if v.get("announce")))
            deadline = time.time() + 180
            while not marker.exists():
                assert process.poll() is None, f"the driver failed:\n{process.stderr.read()[-4000:]}"
                assert time.time() < deadline, "the page did not come up in 180 s"
                time.sleep(0.2)
            during()
        _, stderr = process.communicate(timeout=540)
    finally:
        if process.poll() is None:
            process.terminate()  # puppeteer closes Chromium on SIGTERM
            process.wait(timeout=30)
    assert process.returncode == 0, f"the driver failed:\n{stderr[-4000:]}"
    return json.loads(out.read_text())


def keep_screenshot(path: Path) -> None:
    """Assert `path` is a real screenshot (a PNG of the page, not a blank), and copy it out if asked."""
    from PIL import Image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    with Image.open(path) as image:
        width, height = image.size
        colors = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert width >= 1000 and height >= 600, f"{path}: {width}x{height}"
    assert colors is None or len(colors) > 50, f"{path}: only {len(colors)} colours, a blank page?"
    if os.environ.get(SCREENSHOT_ENV):
        target = Path(os.environ[SCREENSHOT_ENV])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / path.name)


def form_trips(trips: dict, fields: list[dict]) -> list[dict]:
    """Two trips of the table to type into the form: the most complete and the least complete.

    Only trips the form can hold (each value among a select's choices), so the page's own
    validation never blocks them.
    """
    choices = {f["name"]: set(f["values"]) for f in fields if f.get("values")}
    columns = trips["columns"]
    rows = [{name: columns[name][i] for name in columns} for i in range(trips["count"])]
    fits = [r for r in rows if all(r[n] is None or r[n] in values for n, values in choices.items())]
    fits.sort(key=lambda r: sum(v is None for v in r.values()))
    assert sum(v is None for v in fits[-1].values()) > 0, "no trip with a missing value to type"
    return [fits[0], fits[-1]]


def rest_scores(port: int, body: dict) -> list[float]:
    status, answer = http(port, "/v1/models/big_tipper:predict", {"signature_name": "serving_raw", **body})
    assert status == 200, answer
    return [row[0] for row in answer.get("predictions") or answer["outputs"]]


def test_page_scores_trips_as_the_rest_api_does_on_every_backend(browser, server, web_run_root, tmp_path):
    port, base = server
    status, info = http(port, "/web/info.json")
    assert status == 200 and info["web_model"]["available"], info
    status, trips = http(port, "/web/trips.json")
    assert status == 200, trips
    assert trips["count"] == 50 and trips["span"] is not None, trips
    typed = form_trips(trips, info["fields"])
    # Where the trips come from: the newest span of the data the served version's run read.
    assert "the run that pushed version" in trips["source"], trips["source"]
    assert Path(trips["data_root"]) == (web_run_root / "data").resolve()
    assert trips["span"] == available_spans(web_run_root / "data")[-1]
    used = [0, trips["count"] - 1]  # rows copied into the form with their "use" button
    visits = [
        {
            "path": f"/web/?backend={b}" if b else "/web/",
            "trips": typed,
            "use_rows": used,
            "screenshot": str(tmp_path / f"web-{b or 'auto'}.png"),
        }
        for b in BACKENDS
    ]
    readings = drive(browser, port, visits, tmp_path / "driver")

    table_rest = rest_scores(port, {"inputs": trips["columns"]})
    form_rest = rest_scores(port, {"instances": typed})
    for backend, visit, reading in zip(BACKENDS, visits, readings):
        name = backend or "TF.js's choice"
        assert reading["state"] == "ready", f"{name}: {reading['message']}"
        assert not reading["errors"], f"{name}: the page logged errors: {reading['errors']}"
        assert str(info["version"]) in reading["served"]
        if backend:
            assert reading["backend"] == backend, f"asked for {backend}, the page ran on {reading['backend']}"
        else:
            assert reading["backend"] in web_browser.BACKENDS
        assert len(reading["table"]) == trips["count"]
        table_gap = max(abs(page - rest) for page, rest in zip(reading["table"], table_rest))
        assert table_gap <= MAX_DIFFERENCE, f"{name}: a table score is off the REST answer by {table_gap:.3g}"
        for trip, scored, rest in zip(typed, reading["form"], form_rest):
            assert scored["state"] == "done", f"{name}: {scored['text']}"
            assert (
                abs(scored["probability"] - rest) <= MAX_DIFFERENCE
            ), f"{name}: the form's trip {trip} scored {scored['probability']} in the page, {rest} by REST"
        for index, scored in zip(used, reading["used"]):
            assert scored["state"] == "done", f"{name}: {scored['text']}"
            assert abs(scored["probability"] - table_rest[index]) <= MAX_DIFFERENCE, (
                f"{name}: table row {index} copied into the form scored {scored['probability']}, "
                f"{table_rest[index]} by REST"
            )
        keep_screenshot(Path(visit["screenshot"]))
    # The page's scores are not all one value: each trip was scored as itself.
    assert len({round(p, 6) for p in readings[0]["table"]}) > 10


def test_routes_serve_the_page_and_only_the_files_they_name(server):
    port, base = server
    version = served_version(port)
    status, kind, body = get(port, "/web")  # redirected to /web/
    assert status == 200 and kind.startswith("text/html") and b'src="/web/app.js"' in body
    status, kind, _ = get(port, "/web/app.js")
    assert status == 200 and kind.startswith("text/javascript")
    status, kind, body = get(port, f"/web/model/{version}/model.json")
    assert status == 200 and json.loads(body)["format"] == "graph-model"
    status, kind, _ = get(port, f"/web/model/{version}/encode.js")
    assert status == 200 and kind.startswith("text/javascript")  # a module script needs a JS type
    status, kind, _ = get(port, "/web/tfjs/tfjs-backend-wasm.wasm")
    assert status == 200 and kind == "application/wasm"  # instantiateStreaming needs exactly this
    for outside in (
        f"/web/model/{version}/..%2F..%2FSERVED_VERSION.json",
        f"/web/model/{version}/.hidden",
        f"/web/model/{version}/no-such-file.bin",
        "/web/tfjs/..%2Fpackage.json",
        "/web/tfjs/no-such-file.js",
    ):
        assert get(port, outside)[0] == 404, outside
    assert get(port, "/web/trips.json?limit=0")[0] == 422
    assert get(port, "/web/trips.json?limit=100000")[0] == 422


def test_page_follows_the_served_version_and_says_when_it_has_no_web_model(browser, server, tmp_path):
    port, base = server
    pushed = served_version(port)
    newer = pushed + 1

    def push_without_web_model():
        """A push whose web model the web gate refused: the SavedModel alone, placed atomically."""
        shutil.copytree(base / str(pushed), base / f".{newer}.tmp")
        (base / f".{newer}.tmp").rename(base / str(newer))
        deadline = time.time() + 120
        while served_version(port) != newer:
            assert time.time() < deadline, f"the server did not swap to version {newer}"
            time.sleep(0.5)

    open_page = {
        "path": "/web/",
        "trips": [],
        "use_rows": [],
        "screenshot": str(tmp_path / "web-swapped.png"),
        "announce": {"marker": str(tmp_path / "page-up"), "text": f"now serves version {newer}"},
    }
    new_page = {
        "path": "/web/",
        "trips": [],
        "use_rows": [],
        "screenshot": str(tmp_path / "web-no-model.png"),
    }
    before, after = drive(
        browser, port, [open_page, new_page], tmp_path / "driver", during=push_without_web_model
    )

    # The open page keeps its model and says a newer version is served.
    assert before["state"] == "ready", before["message"]
    assert f"this page still runs version {pushed}" in before["served"]
    # A page opened now follows the server to the new version, and says it has no web model.
    status, info = http(port, "/web/info.json")
    assert status == 200 and info["version"] == newer and not info["web_model"]["available"], info
    assert after["state"] == "no-model", after["message"]
    assert f"Version {newer} has no web model" in after["message"]
    assert after["score_disabled"]
    assert after["table"] == [None] * 50, "trips listed, none scored"
    status, trips = http(port, "/web/trips.json?limit=5")
    assert status == 200 and trips["count"] == 5, trips
    assert "no run" in trips["source"], trips["source"]  # not in ML Metadata: the run root's data
    for reading in (before, after):
        assert not reading["errors"], reading["errors"]
    keep_screenshot(tmp_path / "web-swapped.png")
    keep_screenshot(tmp_path / "web-no-model.png")
