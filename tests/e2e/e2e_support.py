"""Helpers the e2e test files share: running the CLI in-process, reading what it served, building requests.

A plain module beside conftest.py (test files cannot import conftest.py by name: tests/ has
one too). The fixtures that use these live in conftest.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from pathlib import Path

import pandas as pd

from models import features
from pipeline.cli import main
from pipeline.config import PipelineConfig
from pipeline.ops.run import run_command
from pipeline.ops.run_history import load_report


@dataclasses.dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str
    versions: list[str]
    report: object


def serving_versions(root: Path) -> list[str]:
    """The SavedModel versions (integer folders; the edge models live in `edge/` beside them)."""
    base = PipelineConfig(root=root).serving_dir
    return sorted(p.name for p in base.iterdir() if p.name.isdigit()) if base.is_dir() else []


def edge_versions(root: Path) -> list[str]:
    base = PipelineConfig(root=root).serving_dir / "edge"
    return sorted(p.name for p in base.iterdir()) if base.is_dir() else []


def run_cli(root: Path, *extra: str, config: PipelineConfig | None = None) -> Outcome:
    """`python -m pipeline run` in-process; with `config`, the same run of a programmatic config."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = run_command(config) if config else main(["run", "--root", str(root), *extra])
    return Outcome(
        status,
        out.getvalue(),
        err.getvalue(),
        serving_versions(root),
        load_report(PipelineConfig(root=root).metadata_path),
    )


def node(outcome: Outcome, node_id: str):
    """The run's record of one DAG node."""
    return next(n for n in outcome.report.nodes if n.node_id == node_id)


def serialize(row) -> bytes:
    """A CSV row as the serialized tf.Example `serving_default` takes (blank cells left out)."""
    import tensorflow as tf

    feature = {}
    for key in features.serving_raw_features():
        value = row[key]
        if pd.isna(value):
            continue
        if key in features.RAW_STRING_COLUMNS:
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode()]))
        elif key in features.RAW_INT_COLUMNS:
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        else:
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def raw_inputs(trips: pd.DataFrame) -> dict:
    """A raw-signature request for `trips`: blank cells become the missing markers."""
    import tensorflow as tf

    inputs = {}
    for key in features.serving_raw_features():
        column = trips[key]
        if key in features.RAW_STRING_COLUMNS:
            inputs[key] = tf.constant(column.fillna(features.MISSING_STRING).astype(str).tolist())
        elif key in features.RAW_INT_COLUMNS:
            inputs[key] = tf.constant(column.fillna(features.MISSING_INT).astype("int64").to_numpy())
        else:
            inputs[key] = tf.constant(column.astype("float32").to_numpy())  # NaN marks missing
    return inputs
