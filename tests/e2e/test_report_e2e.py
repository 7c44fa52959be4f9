"""`python -m pipeline report`: the HTML report of a real run, checked against ML Metadata and rendered.

The report of the skewed run (evaluated, refused by the serving gate, after three earlier
runs) holds the figures ML Metadata holds, the trend of every run so far and its charts; in
headless Chromium every chart is drawn (skipped, loudly, where there is no Chromium).
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from models import features
from pipeline.cli import main

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def html_report(runs, tmp_path_factory) -> tuple[Path, object]:
    """The report of the skewed run: evaluated, refused by the serving gate, after three others."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    skewed = runs["skewed"].report
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["report", "--root", str(runs["root"]), "--run", skewed.run_id, "--out", str(out)]) == 0
    return out, skewed


def test_report_figures_match_ml_metadata(runs, html_report):
    import html as html_lib

    out, skewed = html_report
    page = html_lib.unescape(out.read_text())
    assert "https://" not in page and "http://" not in page  # self-contained
    assert f"<th>AUC</th><td>{skewed.overall['auc']:.4f}" in page
    previous = runs["unreachable"].report  # the newest earlier evaluated run
    delta = skewed.overall["auc"] - previous.overall["auc"]
    assert f"{delta:+.4f} vs {previous.run_id}" in page
    assert "Serving gate: REFUSED the push" in page
    for check in skewed.gate_checks:
        assert f"<td>{check['name']}</td><td>{check['status']}</td>" in page
    for name in ("cold", "cached", "unreachable", "skewed"):  # the trend table: every run so far
        assert f"<td>{runs[name].report.run_id}</td>" in page
    assert "<td>completed, serving gate refused</td>" in page
    assert f"<td>{runs['cold'].report.pushed_version}</td></tr>" in page
    for feature in features.SLICE_FEATURES:
        assert f'data-chart="slices:{feature}"' in page
    weekday_aucs = [values["auc"] for name, values in skewed.slices if name.startswith("trip_start_day=")]
    assert f"{min(weekday_aucs):.3f} · " in page
    assert "Data statistics: span 8" in page and 'data-chart="hist:fare"' in page
    assert "Anomalies: none" in page and 'data-chart="drift"' in page


def test_report_renders_with_its_charts_in_headless_chromium(html_report, tmp_path):
    import json
    import shutil as sh
    import subprocess

    from PIL import Image

    browser = sh.which("chromium") or sh.which("chromium-browser") or sh.which("google-chrome")
    if browser is None:
        pytest.skip(
            "NO CHROMIUM ON THIS MACHINE: the report was not rendered (apt-get install chromium; CI does)"
        )
    out, _ = html_report
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,6000"]
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={screenshot}", out.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", out.as_uri()], check=True, capture_output=True, timeout=120, text=True
    ).stdout
    layout = json.loads(re.search(r'<pre id="layout">([^<]*)</pre>', dom).group(1))
    charts = {chart["chart"]: chart for chart in layout}
    assert {"trends", "drift", "hist:fare"} <= set(charts)
    assert {f"slices:{feature}" for feature in features.SLICE_FEATURES} <= set(charts)
    for name, chart in charts.items():
        assert chart["width"] > 0 and chart["height"] > 0, name
        assert chart["drawn"] >= 1, name
    assert charts["trends"]["drawn"] == charts["trends"]["marks"] == 8  # AUC and accuracy of 4 runs
    image = Image.open(screenshot).convert("RGB")
    assert image.size == (1200, 6000)
    colors = image.getcolors(maxcolors=1 << 20)
    assert len(colors) > 50  # text, tables and charts: not a blank page
    assert any(rgb == (0x4A, 0x7A, 0xB7) for _, rgb in colors)  # the bars' blue
