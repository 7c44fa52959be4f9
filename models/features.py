"""The one module that owns feature names, raw column types and the label definition.

Every other module (data spans, preprocessing_fn, model, evaluator slices, tests) imports
names from here, so a renamed or added column is a one-line change.
"""

from __future__ import annotations

import numpy as np

# Raw CSV columns and the type each is written and parsed as. Integer columns are written
# without a decimal point and float columns always with one, so that CsvExampleGen infers the
# same type for every span (a span whose fares happen to be whole numbers would otherwise be
# read as INT and trip the schema).
RAW_INT_COLUMNS: tuple[str, ...] = (
    "trip_start_month",
    "trip_start_hour",
    "trip_start_day",
    "trip_start_timestamp",
    "pickup_community_area",
    "dropoff_community_area",
    "pickup_census_tract",
    "dropoff_census_tract",
)
RAW_FLOAT_COLUMNS: tuple[str, ...] = (
    "fare",
    "tips",
    "trip_miles",
    "trip_seconds",
    "pickup_latitude",
    "pickup_longitude",
    "dropoff_latitude",
    "dropoff_longitude",
)
RAW_STRING_COLUMNS: tuple[str, ...] = ("payment_type", "company")
RAW_COLUMNS: tuple[str, ...] = RAW_INT_COLUMNS + RAW_FLOAT_COLUMNS + RAW_STRING_COLUMNS
# Column -> "int", "float" or "string": what readers of raw CSV (the strict span check,
# ExampleGen, replay data) parse each column as.
RAW_COLUMN_KINDS: dict[str, str] = {
    **{c: "int" for c in RAW_INT_COLUMNS},
    **{c: "float" for c in RAW_FLOAT_COLUMNS},
    **{c: "string" for c in RAW_STRING_COLUMNS},
}

TIMESTAMP_KEY = "trip_start_timestamp"
FARE_KEY = "fare"
TIPS_KEY = "tips"

# Label: a "big tipper" tips more than 20% of the fare (0 when the fare is 0 or missing).
LABEL_KEY = "big_tipper"
BIG_TIP_FRACTION = 0.2

# How a raw-feature request (one dense [N] tensor per feature) marks a missing value, as a blank
# CSV cell or an absent tf.Example feature would: "" for strings, NaN for floats, -1 for
# integers (every integer column is a non-negative code or count).
MISSING_STRING = ""
MISSING_INT = -1
MISSING_FLOAT = float("nan")

# Heavy-tailed non-negative numerics: log1p, then z-score.
LOG_NUMERIC_FEATURES: tuple[str, ...] = ("fare", "trip_miles", "trip_seconds")
# Coordinates: z-scored and also bucketized, so the model sees both place and neighbourhood.
COORDINATE_FEATURES: tuple[str, ...] = (
    "pickup_latitude",
    "pickup_longitude",
    "dropoff_latitude",
    "dropoff_longitude",
)
COORDINATE_BUCKETS = 10
# String categoricals: a vocabulary of the most frequent values plus OOV buckets.
VOCABULARY_FEATURES: tuple[str, ...] = ("payment_type", "company")
# Integer codes with a known closed range (the schema's int_domain must agree; a test checks):
# id 0 = missing, 1..n = the value's position in the range, n + 1 = out of range. No analyzer
# needed, and a code never seen in training still gets an id of its own.
INTEGER_CATEGORICAL_RANGES: dict[str, tuple[int, int]] = {
    "trip_start_hour": (0, 23),
    "trip_start_day": (1, 7),
    "trip_start_month": (1, 12),
    "pickup_community_area": (1, 77),
    "dropoff_community_area": (1, 77),
}
# Integer codes from a huge sparse range (census tracts): hashed into buckets, 0 = missing.
HASHED_FEATURES: dict[str, int] = {"dropoff_census_tract": 256}
# Integer codes beyond int32 (census tracts, about 1.7e10): the web model, whose runtime has
# no int64, takes each as an int32 pair (models/web.py).
WIDE_INT_FEATURES: tuple[str, ...] = ("pickup_census_tract", "dropoff_census_tract")
CATEGORICAL_FEATURES: tuple[str, ...] = (
    VOCABULARY_FEATURES + tuple(INTEGER_CATEGORICAL_RANGES) + tuple(HASHED_FEATURES)
)
OOV_BUCKETS = 1
# Keep the vocabularies bounded: rare values share the OOV bucket.
VOCAB_TOP_K = 200

# Raw columns that never reach the model: the label's source (leaks the answer), the
# timestamp (only orders spans) and a tract present in one trip of 15,002.
EXCLUDED_FEATURES: tuple[str, ...] = (TIPS_KEY, TIMESTAMP_KEY, "pickup_census_tract")

# Columns to slice evaluation metrics by.
SLICE_FEATURES: tuple[str, ...] = ("payment_type", "trip_start_hour", "trip_start_day")


def big_tipper(tips: np.ndarray, fare: np.ndarray) -> np.ndarray:
    """The label in NumPy, for checks outside TensorFlow (the serving gate's ground truth).

    Same definition as `models.transform.big_tipper_label` (a test holds them together):
    1 when tips exceed BIG_TIP_FRACTION of the fare, 0 when the fare is 0 or missing (NaN);
    a missing tip counts as 0.
    """
    tips = np.nan_to_num(np.asarray(tips, dtype=np.float32), nan=0.0)
    fare = np.asarray(fare, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        big = (fare > 0) & (tips > np.float32(BIG_TIP_FRACTION) * fare)
    return big.astype(np.int64)


def transformed_name(key: str) -> str:
    """Name of the Transform output for raw feature `key`."""
    return f"{key}_xf"


def bucketized_name(key: str) -> str:
    """Name of the bucketized Transform output for coordinate `key`."""
    return f"{key}_bucket_xf"


def integer_id_count(key: str) -> int:
    """Number of ids of integer categorical `key`: missing, each value of its range, out of range."""
    low, high = INTEGER_CATEGORICAL_RANGES[key]
    return high - low + 3


def vocabulary_name(key: str) -> str:
    """File name of the vocabulary Transform writes for categorical `key`."""
    return f"vocab_{key}"


def dense_float_features() -> list[str]:
    """Transformed float features fed to the model as numbers."""
    return [transformed_name(k) for k in LOG_NUMERIC_FEATURES + COORDINATE_FEATURES]


def serving_raw_features() -> list[str]:
    """Raw columns a client sends at serving time (everything but the label's source)."""
    return [c for c in RAW_COLUMNS if c != TIPS_KEY]
