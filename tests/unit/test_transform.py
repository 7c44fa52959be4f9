"""preprocessing_fn on hand-made rows through tft_beam: the values the model will see."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from models import features
from models.transform import MISSING_CATEGORY, big_tipper_label, preprocessing_fn
from schemas import SCHEMA_PATH

SCHEMA = text_format.Parse(SCHEMA_PATH.read_text(), schema_pb2.Schema())
FEATURE_SPEC = schema_utils.schema_as_feature_spec(SCHEMA).feature_spec


def row(**overrides):
    """A complete raw trip; optional (VarLen) features are lists, `[]` meaning missing."""
    values = {
        "trip_start_month": 5,
        "trip_start_hour": 14,
        "trip_start_day": 3,
        "trip_start_timestamp": 1400000000,
        "pickup_community_area": 8,
        "dropoff_community_area": 32,
        "pickup_census_tract": 17031081500,
        "dropoff_census_tract": 17031320100,
        "fare": 10.0,
        "tips": 0.0,
        "trip_miles": 2.0,
        "trip_seconds": 600.0,
        "pickup_latitude": 41.89,
        "pickup_longitude": -87.63,
        "dropoff_latitude": 41.88,
        "dropoff_longitude": -87.62,
        "payment_type": b"Cash",
        "company": b"Taxi Affiliation Services",
    }
    values.update(overrides)
    return {
        key: (value if isinstance(value, list) else [value])
        if isinstance(FEATURE_SPEC[key], tf.io.VarLenFeature)
        else value
        for key, value in values.items()
    }


TRAIN_ROWS = [
    row(fare=10.0, tips=3.0, payment_type=b"Credit Card"),  # big tipper: 3 > 2
    row(fare=10.0, tips=2.0, payment_type=b"Credit Card"),  # exactly 20%: not big
    row(fare=0.0, tips=1.0),  # fare 0: never big
    row(fare=[], tips=5.0, company=[]),  # fare and company missing
    row(fare=20.0, tips=0.0, trip_start_hour=23, pickup_community_area=[], dropoff_census_tract=[]),
    row(fare=40.0, tips=9.0, payment_type=b"Credit Card", pickup_latitude=[], trip_start_hour=0),
]
SERVING_ROWS = [
    {k: v for k, v in row(payment_type=b"Bitcoin", trip_start_hour=30).items() if k != features.TIPS_KEY},
]


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    metadata = dataset_metadata.DatasetMetadata.from_feature_spec(FEATURE_SPEC)
    serving_spec = {k: v for k, v in FEATURE_SPEC.items() if k != features.TIPS_KEY}
    serving_metadata = dataset_metadata.DatasetMetadata.from_feature_spec(serving_spec)
    with tft_beam.Context(temp_dir=str(tmp_path_factory.mktemp("tft")), force_tf_compat_v1=False):
        (train, _), transform_fn = (TRAIN_ROWS, metadata) | tft_beam.AnalyzeAndTransformDataset(
            preprocessing_fn
        )
        serving, _ = ((SERVING_ROWS, serving_metadata), transform_fn) | tft_beam.TransformDataset(
            exclude_outputs=[features.LABEL_KEY]
        )
    return train, serving


def column(rows, name):
    return np.array([r[name] for r in rows])


def test_label_is_big_tipper_and_zero_without_a_fare(transformed):
    train, _ = transformed
    assert column(train, features.LABEL_KEY).tolist() == [1, 0, 0, 0, 0, 1]


def test_numerics_are_z_scored_and_missing_fare_counts_as_zero(transformed):
    train, _ = transformed
    fare = column(train, features.transformed_name("fare"))
    assert abs(fare.mean()) < 1e-5 and abs(fare.std() - 1.0) < 1e-3
    logs = np.log1p([10.0, 10.0, 0.0, 0.0, 20.0, 40.0])
    np.testing.assert_allclose(fare, (logs - logs.mean()) / logs.std(), rtol=1e-4)


def test_missing_coordinate_gets_the_mean_and_a_bucket(transformed):
    train, _ = transformed
    latitude = column(train, features.transformed_name("pickup_latitude"))
    assert not np.isnan(latitude).any()
    # Five rows at 41.89 and the missing one filled with their mean: all equal, z-score 0.
    np.testing.assert_allclose(latitude, 0.0, atol=1e-3)
    buckets = column(train, features.bucketized_name("pickup_latitude"))
    assert ((buckets >= 0) & (buckets < features.COORDINATE_BUCKETS)).all()


def test_vocabulary_ids_with_missing_token_and_oov(transformed):
    train, serving = transformed
    payment = column(train, features.transformed_name("payment_type"))
    # Vocabulary by frequency: Cash (3) and Credit Card (3) take ids 0 and 1.
    assert set(payment.tolist()) == {0, 1}
    assert payment[0] == payment[1] == payment[5] != payment[2]
    company = column(train, features.transformed_name("company"))
    assert company[3] != company[0], f"missing company must get its own id ({MISSING_CATEGORY})"
    # An unseen value at serving time lands in the OOV bucket, right after the vocabulary.
    assert serving[0][features.transformed_name("payment_type")] == 2


def test_integer_codes_map_to_fixed_ids(transformed):
    train, serving = transformed
    hours = column(train, features.transformed_name("trip_start_hour"))
    assert hours.tolist() == [15, 15, 15, 15, 24, 1]  # hour h -> h + 1
    areas = column(train, features.transformed_name("pickup_community_area"))
    assert areas[4] == 0 and areas[0] == 8  # missing -> 0, area 8 -> 8 (range starts at 1)
    # Hour 30 is outside 0..23: the out-of-range id, not a clash with a real hour.
    assert serving[0][features.transformed_name("trip_start_hour")] == 25


def test_hashed_tracts_reserve_zero_for_missing(transformed):
    train, _ = transformed
    tracts = column(train, features.transformed_name("dropoff_census_tract"))
    assert tracts[4] == 0
    assert ((tracts[[0, 1, 2, 3, 5]] >= 1) & (tracts[[0, 1, 2, 3, 5]] <= 256)).all()


def test_serving_rows_have_no_label(transformed):
    _, serving = transformed
    assert features.LABEL_KEY not in serving[0]


def test_big_tipper_label_edge_cases():
    tips = tf.constant([3.0, 2.0, 1.0, 5.0, 0.0])
    fare = tf.constant([10.0, 10.0, 0.0, math.nan, -1.0])
    assert big_tipper_label(tips, fare).numpy().tolist() == [1, 0, 0, 0, 0]


def test_numpy_label_agrees_with_the_transform_graph():
    """The serving gate's ground truth (features.big_tipper) is the label Transform computes."""
    rng = np.random.default_rng(0)
    fare = np.concatenate([rng.uniform(0, 60, 500), [0.0, math.nan, -1.0, 10.0]]).astype(np.float32)
    tips = np.concatenate([rng.uniform(0, 15, 500), [1.0, 3.0, 2.0, 2.0]]).astype(np.float32)
    expected = big_tipper_label(tf.constant(tips), tf.constant(fare)).numpy()
    np.testing.assert_array_equal(features.big_tipper(tips, fare), expected)
    assert 0 < expected.sum() < len(expected)


# ---------------------------------------------------------------- builtin-op forms (edge)
# Each replacement of an op TFLite lacks computes what the op computed.


def test_bucket_ids_by_comparison_equal_upper_bound():
    from models.transform import apply_buckets

    rng = np.random.default_rng(0)
    boundaries = np.sort(rng.normal(size=9)).astype(np.float32)
    values = np.concatenate([rng.normal(size=500), boundaries, [-10.0, 10.0]]).astype(np.float32)
    expected = np.searchsorted(boundaries, values, side="right")  # tf.raw_ops.UpperBound's answer
    upper = tf.raw_ops.UpperBound(
        sorted_inputs=boundaries[None, :], values=values[None, :], out_type=tf.int64
    )
    np.testing.assert_array_equal(upper.numpy()[0], expected)
    np.testing.assert_array_equal(
        apply_buckets(tf.constant(values), tf.constant(boundaries[None, :])), expected
    )


def test_integer_hash_spreads_real_tracts_over_the_buckets():
    from data import embedded
    from models.transform import hashed_ids

    frame = embedded.read_raw_csv(embedded.taxi_sample_path())
    tracts = frame["dropoff_census_tract"].dropna().astype(np.int64).unique()
    ids = hashed_ids(tf.constant(tracts), 256).numpy()
    assert ((ids >= 1) & (ids <= 256)).all()
    # As spread as the string hash it replaces: a few hundred tracts fill most buckets.
    old = tf.strings.to_hash_bucket_fast(tf.strings.as_string(tf.constant(tracts)), 256).numpy() + 1
    assert len(set(ids.tolist())) >= 0.9 * len(set(old.tolist()))
    assert hashed_ids(tf.constant([features.MISSING_INT], tf.int64), 256).numpy().tolist() == [0]
