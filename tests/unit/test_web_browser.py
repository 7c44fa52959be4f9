"""The web gate's browser run: `serving/web/encode.js` and a real TF.js model in Chromium.

`encode.js` runs under plain node against its Python twin `models.web.encode` on values
chosen to break one or the other (missing markers, unknown strings, tracts on and beside
multiples of 2**24, float32 rounding ties). The browser test converts a small `tf.Module`
SavedModel (web-style inputs, the exact tract hash of `models.web`) with the TF.js converter
and runs it in headless Chromium on the cpu, wasm and webgl backends, from raw trips: its
answers must be TensorFlow's. Nothing is mocked; the browser test skips, saying why, only
where `serving.web_browser.unavailable()` finds node, the npm packages or Chromium missing.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from models import web, web_convert
from serving import web_browser
from serving.web_browser import BackendRun, WebBrowserError, run_web_model, unavailable

BASE = web.SPLIT_BASE
BUCKETS = 64
VOCABULARY = ["Cash", "Credit Card", "__missing__", "Zuha Taxi ü"]
INPUTS = [
    {
        "name": "company",
        "dtype": "int32",
        "shape": [-1],
        "encoding": "vocabulary",
        "vocabulary": VOCABULARY,
        "missing": -1,
        "unknown": len(VOCABULARY),
    },
    {"name": "fare", "dtype": "float32", "shape": [-1], "encoding": "float", "missing": "NaN"},
    {
        "name": "pickup_census_tract",
        "dtype": "int32",
        "shape": [-1, 2],
        "encoding": "split",
        "base": BASE,
        "missing": [-1, -1],
    },
    {"name": "trip_start_hour", "dtype": "int32", "shape": [-1], "encoding": "int", "missing": -1},
]
# Trips that break an encoder: each column lines up with the others, one trip per position.
TRICKY = {
    "company": np.array(
        [b"Cash", b"", b"Bitcoin", b"__missing__", b"Credit Card", "Zuha Taxi ü".encode(), b"cash", b"Cash "]
        + [b"Credit Card"] * 8,
        object,
    ),
    "fare": np.array(
        [math.nan, 0.1, 1 + 2**-24, 1 + 3 * 2**-24, 1e-40, -87.62621307373047, 3.4e38, 0.0]
        + [41.89250946044922, -0.0, 16777217.0, 1e-7, 2.5, math.nan, 7.75, 1e6],
        np.float64,
    ),
    "pickup_census_tract": np.array(
        [-1, 0, 1, BASE - 1, BASE, BASE + 1, 1015 * BASE - 1, 1015 * BASE]
        + [1015 * BASE + 1, 17031081500, 17031980000, 17031839100, 2**35 - 1, 2**35, -7, 17031081700],
        np.int64,
    ),
    "trip_start_hour": np.array([-1, 0, 23, 2**31 - 1, -(2**31), 1407273300, 5, 12] + [1] * 8, np.int64),
}
TRIPS = 200
BATCH = 64
SINGLE = 16
TOLERANCE = 1e-5


def _node_encode(raw: dict, tmp_path) -> tuple[dict, list]:
    """encode.js under node: (encodeArrays of the columns, encodeTrip of each trip)."""
    data = tmp_path / "data.json"
    web_browser.write_data(str(data), INPUTS, raw)
    script = f"""
    import fs from 'node:fs';
    import {{ encodeArrays, encodeTrip }} from '{(web_browser.WEB_DIR / "encode.js").as_uri()}';
    const {{ raw, inputs }} = JSON.parse(fs.readFileSync({json.dumps(str(data))}, 'utf8'));
    const spelled = (v) => (Number.isNaN(v) ? 'NaN' : Object.is(v, -0) ? '-0' : v);
    const plain = (arrays) => Object.fromEntries(Object.entries(arrays).map(
      ([name, a]) => [name, {{ values: Array.from(a.values, spelled), shape: a.shape, dtype: a.dtype }}]));
    const fakeTf = {{ tensor: (values, shape, dtype) => ({{ values, shape, dtype }}) }};
    const n = raw[inputs[0].name].length;
    const trips = [];
    for (let i = 0; i < n; i++) {{
      const trip = Object.fromEntries(inputs.map((s) => [s.name, raw[s.name][i]]));
      if (trip.fare === null) delete trip.fare;  // an absent feature is a missing one
      trips.push(plain(encodeTrip(trip, inputs, fakeTf)));
    }}
    console.log(JSON.stringify({{ columns: plain(encodeArrays(raw, inputs)), trips }}));
    """
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    return out["columns"], out["trips"]


def _as_numpy(encoded: dict) -> np.ndarray:
    # JSON has no NaN and writes -0 as 0: the node side spells them out.
    values = [{"NaN": math.nan, "-0": -0.0}.get(v, v) if isinstance(v, str) else v for v in encoded["values"]]
    return np.array(values, encoded["dtype"]).reshape(encoded["shape"])


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed: encode.js cannot run")
def test_encode_js_is_models_web_encode(tmp_path):
    columns, trips = _node_encode(TRICKY, tmp_path)
    expected = web.encode(TRICKY, INPUTS)
    assert sorted(columns) == sorted(expected)
    for name, want in expected.items():
        got = _as_numpy(columns[name])
        assert got.dtype == want.dtype and got.shape == want.shape, name
        # Bit for bit: float32 rounding ties and -0.0 included.
        np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32), err_msg=name)
    for i, trip in enumerate(trips):
        for name, want in expected.items():
            np.testing.assert_array_equal(_as_numpy(trip[name]), want[i : i + 1], err_msg=f"trip {i} {name}")
    # The tricky values land where the description says.
    assert columns["company"]["values"][:8] == [0, -1, 4, 2, 1, 3, 4, 4]
    assert columns["pickup_census_tract"]["values"][:4] == [-1, -1, 0, 0]
    assert columns["pickup_census_tract"]["values"][18:20] == [17031081500 // BASE, 17031081500 % BASE]


def test_write_data_refuses_what_json_cannot_carry(tmp_path):
    with pytest.raises(ValueError, match="infinite"):
        web_browser.write_data(str(tmp_path / "d.json"), INPUTS, {**TRICKY, "fare": np.full(16, np.inf)})
    with pytest.raises(ValueError, match="lack the model's inputs"):
        web_browser.write_data(str(tmp_path / "d.json"), INPUTS, {"fare": TRICKY["fare"]})


def test_unavailable_names_what_is_missing(monkeypatch):
    if unavailable() is not None:
        pytest.skip(f"needs a complete set-up to take one piece away: {unavailable()}")
    monkeypatch.setenv("CHROMIUM", "no-such-chromium")
    assert "Chromium is not installed" in unavailable() and "make setup" in unavailable()
    monkeypatch.setattr(web_browser, "NODE_MODULES", web_browser.REPO_ROOT / "no_such_node_modules")
    assert "npm packages are not installed" in unavailable()
    monkeypatch.setenv("PATH", "/nonexistent")
    assert unavailable().startswith("node is not installed")


class _Tiny(tf.Module):
    """A web-style model: a vocabulary code, a split tract through the exact hash, a float, an int."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(7)
        self.company = tf.constant(rng.normal(size=len(VOCABULARY) + 2), tf.float32)
        self.tract = tf.constant(rng.normal(size=BUCKETS + 1), tf.float32)
        self.kernel = tf.Variable(rng.normal(size=(4, 8)) * 0.5, dtype=tf.float32)
        self.out = tf.Variable(rng.normal(size=(8, 1)) * 0.5, dtype=tf.float32)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.int32, name="company"),
            tf.TensorSpec([None], tf.float32, name="fare"),
            tf.TensorSpec([None, 2], tf.int32, name="pickup_census_tract"),
            tf.TensorSpec([None], tf.int32, name="trip_start_hour"),
        ]
    )
    def serve(self, company, fare, pickup_census_tract, trip_start_hour):
        size = len(VOCABULARY)
        code = tf.where(company == -1, size + 1, tf.where((company < 0) | (company > size), size, company))
        fare_missing = tf.math.is_nan(fare)
        columns = [
            tf.gather(self.company, code),
            tf.gather(self.tract, web.exact_hashed_ids(pickup_census_tract, BUCKETS)),
            tf.where(fare_missing, -1.0, tf.math.log1p(tf.abs(tf.where(fare_missing, 0.0, fare)))),
            # As a float: WebGL holds int32 in float32, so integer arithmetic on the tricky
            # hours (past 2**24) would be inexact there; the tract hash avoids it with limbs.
            tf.clip_by_value(tf.cast(trip_start_hour, tf.float32), -1.0, 24.0) / 24.0,
        ]
        hidden = tf.nn.relu(tf.matmul(tf.stack(columns, axis=1), self.kernel))
        return {"probabilities": tf.sigmoid(tf.matmul(hidden, self.out))}


def _trips() -> dict[str, np.ndarray]:
    """The tricky trips, then ordinary ones: tracts near Chicago's, a few of each missing."""
    rng = np.random.default_rng(11)
    extra = TRIPS - len(TRICKY["fare"])
    pick = rng.integers(0, len(VOCABULARY) + 2, extra)
    company = [([*VOCABULARY, "", "Unknown Cab"])[i].encode() for i in pick]
    tract = 17031000000 + rng.integers(0, 999999, extra)
    tract[rng.random(extra) < 0.2] = -1
    fare = rng.gamma(2.0, 6.0, extra).astype(np.float32).astype(np.float64)
    fare[rng.random(extra) < 0.1] = np.nan
    hour = rng.integers(-1, 24, extra)
    return {
        "company": np.concatenate([TRICKY["company"], np.array(company, object)]),
        "fare": np.concatenate([TRICKY["fare"], fare]),
        "pickup_census_tract": np.concatenate([TRICKY["pickup_census_tract"], tract]),
        "trip_start_hour": np.concatenate([TRICKY["trip_start_hour"], hour]),
    }


def test_tfjs_model_in_chromium_answers_as_tensorflow(tmp_path):
    reason = unavailable()
    if reason:
        pytest.skip(f"WEB GATE BROWSER TEST SKIPPED: {reason}")
    module = _Tiny()
    saved = str(tmp_path / "saved_model")
    tf.saved_model.save(module, saved, signatures={web.WEB_SIGNATURE: module.serve})
    web_convert.convert(saved, str(tmp_path / "web"), web.WEB_SIGNATURE)
    raw = _trips()
    encoded = web.encode(raw, INPUTS)
    loaded = tf.saved_model.load(saved).signatures[web.WEB_SIGNATURE]
    expected = loaded(**{k: tf.constant(v) for k, v in encoded.items()})["probabilities"].numpy()[:, 0]
    assert np.ptp(expected) > 0.1, "the model must tell the trips apart for agreement to mean anything"

    runs = run_web_model(
        str(tmp_path / "web"),
        INPUTS,
        raw,
        backends=("cpu", "wasm", "webgl", "no-such-backend"),
        batch_size=BATCH,
        single=SINGLE,
        timing=3,
        timeout_s=120,
    )

    assert list(runs) == ["cpu", "wasm", "webgl", "no-such-backend"]
    failed = runs["no-such-backend"]
    assert isinstance(failed, BackendRun) and "not found" in failed.error and failed.predictions.size == 0
    for backend in ("cpu", "wasm", "webgl"):
        run = runs[backend]
        assert run.error is None and run.backend == backend, (backend, run.error)
        assert run.predictions.dtype == np.float32 and run.predictions.shape == (TRIPS,)
        difference = np.abs(run.predictions.astype(np.float64) - expected)
        assert (
            difference.max() <= TOLERANCE
        ), f"{backend}: trip {difference.argmax()} differs by {difference.max()}"
        np.testing.assert_array_equal(run.singles, run.predictions[:SINGLE], err_msg=backend)
        assert run.load_ms > 0 and run.run_ms > 0 and "Chrome" in run.browser
        assert sorted(run.latency_ms) == [1, 64]
        assert all(0 < t["p50"] <= t["p99"] for t in run.latency_ms.values())


def test_run_web_model_fails_clearly(tmp_path):
    reason = unavailable()
    if reason:
        pytest.skip(f"WEB GATE BROWSER TEST SKIPPED: {reason}")
    with pytest.raises(WebBrowserError, match="no TF.js model"):
        run_web_model(str(tmp_path), INPUTS, TRICKY)
    (tmp_path / "model.json").write_text("{}")
    with pytest.raises(WebBrowserError, match="timed out after 0.5 s"):
        run_web_model(str(tmp_path), INPUTS, TRICKY, timeout_s=0.5)
