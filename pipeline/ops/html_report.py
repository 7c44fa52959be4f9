"""`python -m pipeline report --out report.html`: one self-contained HTML page about a run.

Everything comes from ML Metadata and the artifacts it points at (plus the newest span's CSV
for its statistics); nothing is fetched from the network, so the page opens anywhere:
- the headline: status, this run's AUC and accuracy against the previous evaluated run,
  blessing and push, the weakest slices;
- metric trends across every run (inline SVG);
- per-slice AUC as bar charts, worst first (slices too small to judge are greyed);
- the serving gate's verdict, check by check;
- anomalies (ExampleValidator) and drift (DriftGate distances against their thresholds);
- TFDV statistics of the newest span: per feature its type, count, missing share, numeric
  summary or top values, and a histogram (TFDV's own buckets). TFDV's Facets view needs
  web components from the internet, so the page draws the same statistics itself.

A small script measures every chart after layout and records the sizes in
`<pre id="layout">` (JSON), so a headless browser check can assert the charts were laid out.
The charts themselves are drawn by `pipeline/ops/svg_charts.py`.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from pipeline.ops import run_history
from pipeline.ops.svg_charts import bar_chart, escape, fmt, histogram, line_chart

# ------------------------------------------------------------------ sections


def _history(metadata_path: Path) -> list[run_history.RunReport]:
    store = run_history.open_store(metadata_path)
    return [run_history.load_report(metadata_path, run_id, store) for run_id in run_history.run_ids(store)]


def _headline(current: run_history.RunReport, previous: run_history.RunReport | None) -> str:
    status = run_history.run_status(current)
    rows = [f"<tr><th>Status</th><td>{escape(status)}</td></tr>"]
    if current.spans:
        rows.append(f"<tr><th>Spans</th><td>{escape(current.spans)}</td></tr>")
    verdict = ""
    if current.overall:
        for key, label in (("auc", "AUC"), ("binary_accuracy", "Accuracy")):
            value = current.overall.get(key)
            delta = ""
            if previous and previous.overall.get(key) is not None and value is not None:
                diff = value - previous.overall[key]
                cls = "up" if diff > 0.0005 else "down" if diff < -0.0005 else "same"
                delta = f' <span class="{cls}">{diff:+.4f} vs {escape(previous.run_id)}</span>'
            rows.append(f"<tr><th>{label}</th><td>{fmt(value)}{delta}</td></tr>")
        if previous and previous.overall.get("auc") is not None:
            better = current.overall.get("auc", 0) >= previous.overall["auc"]
            verdict = (
                f'<p class="verdict {"up" if better else "down"}">This run\'s model is '
                f"{'as good as or better than' if better else 'WORSE than'} the previous evaluated run's "
                f"on AUC ({fmt(current.overall.get('auc'))} vs {fmt(previous.overall['auc'])}).</p>"
            )
    blessed = {True: "yes", False: "no", None: "-"}[current.blessed]
    if current.blessed is False and current.reasons:
        blessed += ": " + "; ".join(current.reasons)
    rows.append(f"<tr><th>Blessed</th><td>{escape(blessed)}</td></tr>")
    if current.pushed_version:
        pushed = current.pushed_version + (
            "" if current.pushed_new_version else " (cached run: already serving)"
        )
    else:
        pushed = "nothing"
    rows.append(f"<tr><th>Pushed</th><td>{escape(pushed)}</td></tr>")
    weakest = run_history.weakest_slices(current, 3)
    if weakest:
        weak = ", ".join(f"{name} (AUC {values['auc']:.3f})" for name, values in weakest)
        rows.append(f"<tr><th>Weakest slices</th><td>{escape(weak)}</td></tr>")
    return (
        f'<section id="headline"><h2>Summary</h2>{verdict}<table class="kv">{"".join(rows)}</table></section>'
    )


def _trends(history: list[run_history.RunReport]) -> str:
    evaluated = [r for r in history if r.overall]
    if not evaluated:
        return '<section id="trends"><h2>Trends</h2><p>No run has been evaluated yet.</p></section>'
    labels = [f"run {history.index(r) + 1}" for r in evaluated]
    chart = line_chart(
        "trends",
        {
            "AUC": [r.overall.get("auc") for r in evaluated],
            "accuracy": [r.overall.get("binary_accuracy") for r in evaluated],
        },
        labels,
        [r.pushed_new_version for r in evaluated],
    )
    rows = "".join(
        f"<tr><td>run {i + 1}</td><td>{escape(r.run_id)}</td><td>{escape(r.spans or '-')}</td>"
        f"<td>{escape(run_history.run_status(r))}</td><td>{fmt(r.overall.get('auc'))}</td>"
        f"<td>{fmt(r.overall.get('binary_accuracy'))}</td>"
        f"<td>{escape({True: 'yes', False: 'no', None: '-'}[r.blessed])}</td>"
        f"<td>{escape(r.pushed_version if r.pushed_new_version else '-')}</td></tr>"
        for i, r in enumerate(history)
    )
    return (
        f'<section id="trends"><h2>Metric trends across runs</h2>{chart}'
        "<table><tr><th></th><th>run</th><th>spans</th><th>status</th><th>AUC</th><th>accuracy</th>"
        f"<th>blessed</th><th>pushed</th></tr>{rows}</table></section>"
    )


def _slices(current: run_history.RunReport) -> str:
    if not current.slices:
        return '<section id="slices"><h2>Per-slice metrics</h2><p>Not evaluated in this run.</p></section>'
    reliable = {name for name, _ in run_history.weakest_slices(current, len(current.slices))}
    groups: dict[str, list] = {}
    for name, values in current.slices:
        feature = name.split("=", 1)[0]
        groups.setdefault(feature, []).append((name, values))
    parts = [
        '<section id="slices"><h2>Per-slice AUC, worst first</h2>'
        f"<p>Grey: fewer than {run_history.MIN_CLASS_TRIPS} trips of one class (too small to judge). "
        "Red: AUC below 0.85.</p>"
    ]
    for feature, items in sorted(groups.items()):
        items.sort(key=lambda item: (item[0] not in reliable, item[1].get("auc", math.nan)))
        rows = [
            (
                name.split("=", 1)[-1],
                values.get("auc", math.nan),
                f"{int(values.get('example_count', 0))} trips, acc {fmt(values.get('binary_accuracy'), 3)}",
                name in reliable,
            )
            for name, values in items
        ]
        parts.append(f"<h3>{escape(feature)}</h3>{bar_chart('slices:' + feature, rows)}")
    parts.append("</section>")
    return "".join(parts)


def _gate(current: run_history.RunReport) -> str:
    if current.gate_blessed is None:
        return '<section id="gate"><h2>Serving gate</h2><p>Did not run in this run.</p></section>'
    rows = "".join(
        f'<tr class="{escape(c["status"])}"><td>{escape(c["name"])}</td><td>{escape(c["status"])}</td>'
        f"<td>{escape(c['detail'])}</td></tr>"
        for c in current.gate_checks
    )
    verdict = "passed" if current.gate_blessed else "REFUSED the push"
    return (
        f'<section id="gate"><h2>Serving gate: {verdict}</h2><p>{escape(current.gate_summary or "")}</p>'
        f"<table><tr><th>check</th><th>status</th><th>detail</th></tr>{rows}</table></section>"
    )


def _anomalies_and_drift(current: run_history.RunReport) -> str:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    from components.anomaly_gate import spec as anomaly_spec
    from components.drift_gate import spec as drift_spec

    parts = ['<section id="data-checks"><h2>Anomalies and drift</h2>']
    found = []
    for node in current.nodes:
        for artifact in node.outputs.get("anomalies", []):
            for path in sorted(Path(artifact.uri).glob(f"*/{anomaly_spec.ANOMALIES_FILE_NAME}")):
                proto = anomalies_pb2.Anomalies()
                proto.ParseFromString(path.read_bytes())
                for feature, info in sorted(proto.anomaly_info.items()):
                    found.append(f"{path.parent.name}: {feature}: {info.short_description}")
    parts.append(
        "<p>Anomalies: none (every feature matches the schema).</p>"
        if not found
        else "<ul class='fail'>" + "".join(f"<li>{escape(a)}</li>" for a in found) + "</ul>"
    )
    drift_file = None
    for node in current.nodes:
        for artifact in node.outputs.get("drift", []):
            candidate = Path(artifact.uri) / drift_spec.DRIFT_FILE_NAME
            drift_file = candidate if candidate.is_file() else drift_file
    if drift_file is None:
        parts.append("<p>Drift: not checked in this run.</p>")
    else:
        drift = json.loads(drift_file.read_text())
        distances = drift.get("distances", [])
        if not distances:
            parts.append(f"<p>Drift: {escape(current.drift_summary or 'nothing to compare with')}</p>")
        else:
            rows = [
                (
                    f"{d['feature']} ({'L-inf' if d['measure'].startswith('L') else 'JSD'})",
                    d["value"] / d["threshold"] if d["threshold"] else 0.0,
                    f"{d['value']:.3f} of {d['threshold']:.3f}",
                    True,
                )
                for d in sorted(distances, key=lambda d: -d["value"] / (d["threshold"] or 1))
            ]
            accepted = " (ACCEPTED by --accept-drift)" if current.drift_accepted else ""
            parts.append(
                f"<p>Drift{accepted}: {escape(current.drift_summary or '')}. "
                "Bars: distance as a share of its threshold (1.0 = the limit; red beyond it).</p>"
                + bar_chart(
                    "drift",
                    rows,
                    lo=0.0,
                    hi=max(1.0, max(r[1] for r in rows)),
                    alarming=lambda ratio: ratio > 1.0,
                )
            )
    parts.append("</section>")
    return "".join(parts)


def _newest_span_statistics(current: run_history.RunReport) -> tuple[str, object] | None:
    from components.drift_gate import drift
    from components.drift_gate import spec as drift_spec

    if not current.spans:
        return None
    newest = int(current.spans.split(",")[-1])
    for node in current.nodes:
        if node.node_id == "DriftGate" and node.properties.get(drift_spec.DATA_ROOT_KEY):
            files = drift.span_files(
                node.properties[drift_spec.DATA_ROOT_KEY],
                node.properties[drift_spec.SPAN_PATTERN_KEY],
                newest,
            )
            if files:
                return f"span {newest}", drift.span_statistics(files)
    return None


def _statistics(current: run_history.RunReport) -> str:
    found = _newest_span_statistics(current)
    if found is None:
        return (
            '<section id="statistics"><h2>Data statistics</h2>'
            "<p>The newest span is not readable.</p></section>"
        )
    label, stats = found
    dataset = stats.datasets[0]
    rows = []
    for feature in sorted(dataset.features, key=lambda f: ".".join(f.path.step)):
        name = ".".join(feature.path.step)
        if feature.HasField("num_stats"):
            num = feature.num_stats
            common = num.common_stats
            summary = (
                f"mean {num.mean:.4g}, std {num.std_dev:.4g}, min {num.min:.4g}, "
                f"median {num.median:.4g}, max {num.max:.4g}, zeros {num.num_zeros}"
            )
            standard = [h for h in num.histograms if h.type == h.STANDARD]
            chart = (
                histogram(
                    f"hist:{name}", [(b.low_value, b.high_value, b.sample_count) for b in standard[0].buckets]
                )
                if standard
                else ""
            )
        else:
            strings = feature.string_stats
            common = strings.common_stats
            top = ", ".join(f"{v.value} ({v.frequency:.0f})" for v in strings.top_values[:5])
            summary = f"{strings.unique} unique; top: {top}"
            ranks = strings.rank_histogram.buckets[:12]
            chart = histogram(f"hist:{name}", [(i, i, b.sample_count) for i, b in enumerate(ranks)])
        total = common.num_non_missing + common.num_missing
        missing = common.num_missing / total if total else 0.0
        rows.append(
            f"<tr><td>{escape(name)}</td>"
            f"<td>{escape('number' if feature.HasField('num_stats') else 'string')}</td>"
            f"<td>{common.num_non_missing}</td>"
            f"<td class='{'warn' if missing > 0.05 else ''}'>{missing:.1%}</td>"
            f"<td>{escape(summary)}</td><td>{chart}</td></tr>"
        )
    return (
        f'<section id="statistics"><h2>Data statistics: {escape(label)} '
        f"({dataset.num_examples} trips, TFDV)</h2>"
        "<table><tr><th>feature</th><th>type</th><th>present</th><th>missing</th><th>summary</th>"
        f"<th>distribution</th></tr>{''.join(rows)}</table></section>"
    )


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:22px} h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
h3{font-size:15px;margin:14px 0 4px} table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #e3e3e3;padding:3px 8px;text-align:left;vertical-align:top}
table.kv th{background:#f6f6f6;width:150px} .up{color:#2e7d32} .down{color:#c62828} .same{color:#666}
.verdict{font-size:16px;font-weight:600} tr.fail td{background:#fdecea} ul.fail{color:#c62828}
td.warn{color:#c62828;font-weight:600} svg .lbl{font-size:12px} svg .val,svg .tick{font-size:11px;fill:#555}
svg .grid{stroke:#eee} pre#layout{display:none}
"""

LAYOUT_SCRIPT = """
window.addEventListener('load', function () {
  var out = [];
  document.querySelectorAll('svg.chart').forEach(function (el) {
    var r = el.getBoundingClientRect();
    var marks = el.querySelectorAll('rect.bar, circle.point');
    var drawn = 0;
    marks.forEach(function (m) {
      var b = m.getBoundingClientRect();
      if (b.width > 0 && b.height > 0) drawn++;
    });
    out.push({chart: el.getAttribute('data-chart'), width: r.width, height: r.height,
              marks: marks.length, drawn: drawn});
  });
  document.getElementById('layout').textContent = JSON.stringify(out);
});
"""


def _production(root: Path) -> str:
    """`monitor`'s reports over time: skew, prediction drift, realized against the Evaluator."""
    import json

    from monitoring.report import MONITOR_FOLDER

    reports = []
    for path in sorted((root / MONITOR_FOLDER).glob("*.json")):
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # A report being written, or not ours: the others still show.
    if not reports:
        return (
            '<section id="production"><h2>Production</h2><p>No monitor report yet: serve the model '
            "(<code>python -m pipeline serve</code>) and run <code>python -m pipeline monitor</code>."
            "</p></section>"
        )
    reports.sort(key=lambda r: r.get("created", ""))
    rows, points, labels = [], {"realized AUC": [], "Evaluator AUC": [], "realized accuracy": []}, []
    for report in reports:
        for version in report.get("versions", []):
            findings = [f for f in report.get("findings", []) if f["version"] == version["version"]]
            skewed = [d["feature"] for d in version.get("skew", []) if d["value"] > d["threshold"]]
            realized = version.get("realized") or {}
            evaluator = version.get("evaluator") or {}
            rows.append(
                f"<tr><td>{escape(report.get('created'))}</td><td>{escape(version['version'])}</td>"
                f"<td>{version['examples']:,}</td><td>{escape(', '.join(skewed) or 'none')}</td>"
                f"<td>{fmt(version.get('prediction_drift'))}</td>"
                f"<td>{fmt(realized.get('accuracy'))} / {fmt(evaluator.get('accuracy'))}</td>"
                f"<td>{fmt(realized.get('auc'))} / {fmt(evaluator.get('auc'))}</td>"
                f"<td>{len(findings)}</td></tr>"
            )
            if realized.get("auc") is not None:
                labels.append(f"v{str(version['version'])[-4:]}")
                points["realized AUC"].append(realized.get("auc"))
                points["Evaluator AUC"].append(evaluator.get("auc"))
                points["realized accuracy"].append(realized.get("accuracy"))
    chart = (
        line_chart("production", points, labels, [True] * len(labels))
        if labels
        else "<p>No labelled outcomes joined yet (<code>monitor --labels</code>).</p>"
    )
    return (
        f'<section id="production"><h2>Production ({len(reports)} monitor reports)</h2>{chart}'
        "<table><tr><th>monitored</th><th>version</th><th>requests</th><th>skewed features</th>"
        "<th>prediction drift</th><th>accuracy realized / Evaluator</th><th>AUC realized / Evaluator</th>"
        f"<th>findings</th></tr>{''.join(rows)}</table></section>"
    )


def build_html(metadata_path: str | Path, run_id: str | None = None) -> str:
    """The report page for run `run_id` (default: the newest)."""
    metadata_path = Path(metadata_path)
    history = _history(metadata_path)
    if not history:
        raise KeyError(f"the metadata store {metadata_path} holds no pipeline run")
    ids = [r.run_id for r in history]
    if run_id is not None and run_id not in ids:
        raise KeyError(f"no pipeline run {run_id!r} in the metadata store")
    index = ids.index(run_id) if run_id else len(history) - 1
    current = history[index]
    previous = next((r for r in reversed(history[:index]) if r.overall), None)
    generated = time.strftime("%Y-%m-%d %H:%M:%S")
    sections = [
        _headline(current, previous),
        _trends(history[: index + 1]),
        _slices(current),
        _gate(current),
        _anomalies_and_drift(current),
        _statistics(current),
        _production(metadata_path.parent.parent),
    ]
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Run {escape(current.run_id)}: taxi big-tipper pipeline</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>Taxi big-tipper pipeline: run {escape(current.run_id)}</h1>"
        f"<p class='tick'>Generated {generated} from {escape(metadata_path)}</p>"
        + "".join(sections)
        + f"<pre id='layout'></pre><script>{LAYOUT_SCRIPT}</script></body></html>"
    )


def write_html(metadata_path: str | Path, out: str | Path, run_id: str | None = None) -> Path:
    """Write the page atomically; return its path."""
    import os

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(build_html(metadata_path, run_id), encoding="utf-8")
    os.replace(tmp, out)
    return out
