"""The pushed SavedModel's signatures, called in-process: shapes, the two signatures agreeing, bad inputs.

`serving_default` (serialized tf.Examples) answers (N, 1) probabilities that tell cash trips
from card trips; `serving_raw` (one tensor per feature, missing markers included) answers the same;
a wrongly shaped or missing feature is refused by the signature, a wrong dtype by the request
check, each naming the feature.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from e2e_support import raw_inputs, serialize

from data import embedded
from models import features
from pipeline.config import PipelineConfig

pytestmark = pytest.mark.e2e


def test_pushed_model_serves_probabilities_of_shape_n_by_1(runs):
    import numpy as np
    import tensorflow as tf

    cold = runs["cold"]
    assert len(cold.versions) == 1
    assert cold.report.pushed_new_version
    path = Path(cold.report.pushed_path)
    assert path.name == cold.versions[0] and path.parent == PipelineConfig(root=runs["root"]).serving_dir
    model = tf.saved_model.load(str(path))
    serve = model.signatures["serving_default"]
    trips = pd.read_csv(runs["root"] / "data" / "span-8" / embedded.SPAN_FILE_NAME).head(50)
    examples = [serialize(row) for _, row in trips.iterrows()]
    probabilities = serve(examples=tf.constant(examples))["probabilities"].numpy()
    assert probabilities.shape == (50, 1)
    assert np.isfinite(probabilities).all() and ((probabilities >= 0) & (probabilities <= 1)).all()
    # Cash trips almost never record a tip: the model must know it.
    cash = (trips["payment_type"] == "Cash").to_numpy()
    assert probabilities[cash].mean() < 0.1 < probabilities[~cash].mean()


def test_raw_signature_matches_the_examples_signature_with_missing_values(served):
    import numpy as np
    import tensorflow as tf

    model, trips = served
    assert trips[features.serving_raw_features()].isna().any(axis=1).sum() > 5  # gaps included
    raw = model.signatures["serving_raw"](**raw_inputs(trips))["probabilities"].numpy()
    examples = [serialize(row) for _, row in trips.iterrows()]
    parsed = model.signatures["serving_default"](examples=tf.constant(examples))["probabilities"].numpy()
    assert raw.shape == (len(trips), 1)
    np.testing.assert_allclose(raw, parsed, atol=1e-5)


@pytest.mark.parametrize("mistake", ["rank_2", "scalar", "missing", "batch"])
def test_raw_signature_refuses_malformed_requests_naming_the_feature(served, mistake):
    """The exported signature itself refuses a wrong rank, a missing feature or a batch mismatch."""
    import tensorflow as tf

    model, trips = served
    inputs = raw_inputs(trips)
    if mistake == "rank_2":
        inputs["fare"] = inputs["fare"][:, None]
    elif mistake == "scalar":
        inputs["fare"] = inputs["fare"][0]
    elif mistake == "missing":
        del inputs["fare"]
    else:
        inputs["fare"] = inputs["fare"][:-1]
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError)) as error:
        model.signatures["serving_raw"](**inputs)
    assert "fare" in str(error.value)
    if mistake == "rank_2":
        assert f"Shape of tensor fare [{len(trips)},1] is not compatible with expected shape [?]" in str(
            error.value
        )


def test_request_check_names_a_wrong_dtype_for_the_real_model(served):
    """TensorFlow names a wrongly typed input by position; the request check names the feature."""
    from serving import request_checks as serving

    model, trips = served
    inputs = {k: v.numpy() for k, v in raw_inputs(trips).items()}
    inputs["trip_start_hour"] = inputs["trip_start_hour"].astype("float64")
    specs = serving.raw_input_specs(model.signatures["serving_raw"])
    with pytest.raises(
        serving.ServingInputError, match="feature 'trip_start_hour': wrong dtype: received float64"
    ):
        serving.check_raw_request(specs, inputs)
