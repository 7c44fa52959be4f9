"""The e2e pipeline runs every test file here reads: made once per session, in one temp root.

`runs` makes these real LocalDagRunner runs in order (each test reads their ML Metadata record):
1. cold run (everything executes, the model is pushed);
2. the same command again (fully cached, no new version);
3. an unreachable AUC threshold (Evaluator re-runs, nothing is pushed);
4. a model whose raw signature skews `fare` (the Evaluator blesses it, the serving gate
   refuses it, nothing is pushed);
5. a model whose probabilities are all too high (same AUC: the Evaluator's calibration bound
   refuses it, nothing is pushed);
6. a new span with an unknown payment_type (the data gate stops the run before Transform);
7. a span with a missing column (stopped before any statistics);
8. a model that blends each prediction with its batch's mean (the Evaluator blesses it, the
   serving gate's batch_invariance check refuses it);
9. the cold run's model with edge tolerances no int8 model meets (the SavedModel is pushed,
   the edge model is not).

The order matters: later runs compare with earlier ones (the baseline model, the runs table).
A new case belongs here, not in a fixture of its own: every pipeline run costs minutes of CI.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from e2e_support import Outcome, run_cli

from data import embedded
from pipeline.config import PipelineConfig


def span_with(root: Path, name: str, edit) -> Path:
    """A data root with the embedded spans plus span-9, made from span-8 by `edit`."""
    data = root / name
    shutil.copytree(root / "data", data)
    frame = pd.read_csv(data / "span-8" / embedded.SPAN_FILE_NAME, dtype=str, keep_default_na=False)
    (data / "span-9").mkdir()
    edit(frame).to_csv(data / "span-9" / embedded.SPAN_FILE_NAME, index=False)
    return data


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> dict[str, Outcome]:
    root = tmp_path_factory.mktemp("e2e")
    outcomes = {"cold": run_cli(root)}
    outcomes["cached"] = run_cli(root)
    outcomes["unreachable"] = run_cli(root, "--auc-threshold", "0.999")
    # skewed_trainer.py (beside this file) trains the real model but exports a raw signature
    # that scales fare by 100: a JSON client sending cents. serving_default is untouched.
    outcomes["skewed"] = run_cli(root, config=PipelineConfig(root=root, run_fn="skewed_trainer.run_fn"))
    # miscalibrated_trainer.py: the real model with its output bias raised before export.
    outcomes["miscalibrated"] = run_cli(
        root, config=PipelineConfig(root=root, run_fn="miscalibrated_trainer.run_fn")
    )

    def unknown_payment(frame):
        frame.loc[frame.index[::3], "payment_type"] = "Bitcoin"
        return frame

    outcomes["anomaly"] = run_cli(root, "--data-root", str(span_with(root, "data-anomaly", unknown_payment)))
    outcomes["missing_column"] = run_cli(
        root, "--data-root", str(span_with(root, "data-missing", lambda f: f.drop(columns=["company"])))
    )
    # batch_blend_trainer.py: the real model, exported with a (N, 1) + (N,) broadcast inside.
    outcomes["batch_blend"] = run_cli(
        root, config=PipelineConfig(root=root, run_fn="batch_blend_trainer.run_fn")
    )
    # The cold run's model again (Trainer cached), with edge tolerances no int8 model can meet:
    # the SavedModel is pushed, the edge model is not.
    outcomes["edge_refused"] = run_cli(root, "--edge-accuracy-tolerance", "0", "--edge-auc-tolerance", "0")
    outcomes["root"] = root
    return outcomes


@pytest.fixture(scope="session")
def served(runs):
    """The cold run's pushed SavedModel, loaded, and 40 trips of span 8 to send it."""
    import tensorflow as tf

    model = tf.saved_model.load(runs["cold"].report.pushed_path)
    trips = pd.read_csv(runs["root"] / "data" / "span-8" / embedded.SPAN_FILE_NAME).head(40)
    return model, trips
