"""Invariants of the feature-name module and its agreement with the curated schema."""

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from models import features
from schemas import SCHEMA_PATH


def load_schema() -> schema_pb2.Schema:
    return text_format.Parse(SCHEMA_PATH.read_text(), schema_pb2.Schema())


def model_raw_features() -> set[str]:
    return set(features.LOG_NUMERIC_FEATURES + features.COORDINATE_FEATURES + features.CATEGORICAL_FEATURES)


def test_every_raw_column_is_used_once_or_excluded():
    used = features.LOG_NUMERIC_FEATURES + features.COORDINATE_FEATURES + features.CATEGORICAL_FEATURES
    assert len(used) == len(set(used)), "a raw column feeds two feature groups"
    assert set(used) | set(features.EXCLUDED_FEATURES) == set(features.RAW_COLUMNS)
    assert not set(used) & set(features.EXCLUDED_FEATURES)


def test_the_label_source_never_reaches_the_model():
    assert features.TIPS_KEY in features.EXCLUDED_FEATURES
    assert features.TIPS_KEY not in model_raw_features()
    assert features.TIPS_KEY not in features.serving_raw_features()
    assert features.LABEL_KEY not in features.RAW_COLUMNS


def test_transformed_names_are_unique_and_distinct_from_raw_names():
    names = [features.transformed_name(k) for k in model_raw_features()]
    names += [features.bucketized_name(k) for k in features.COORDINATE_FEATURES]
    assert len(names) == len(set(names))
    assert not set(names) & set(features.RAW_COLUMNS)


def test_column_types_partition_the_raw_columns():
    groups = [features.RAW_INT_COLUMNS, features.RAW_FLOAT_COLUMNS, features.RAW_STRING_COLUMNS]
    assert sum(len(g) for g in groups) == len(set(features.RAW_COLUMNS))
    assert set(features.VOCABULARY_FEATURES) <= set(features.RAW_STRING_COLUMNS)
    assert set(features.INTEGER_CATEGORICAL_RANGES) <= set(features.RAW_INT_COLUMNS)
    assert set(features.HASHED_FEATURES) <= set(features.RAW_INT_COLUMNS)


def test_schema_describes_exactly_the_raw_columns_with_their_types():
    schema = load_schema()
    types = {f.name: f.type for f in schema.feature}
    assert set(types) == set(features.RAW_COLUMNS)
    for column in features.RAW_INT_COLUMNS:
        assert types[column] == schema_pb2.INT, column
    for column in features.RAW_FLOAT_COLUMNS:
        assert types[column] == schema_pb2.FLOAT, column
    for column in features.RAW_STRING_COLUMNS:
        assert types[column] == schema_pb2.BYTES, column


def test_integer_id_ranges_agree_with_the_schema_domains():
    by_name = {f.name: f for f in load_schema().feature}
    for key, (low, high) in features.INTEGER_CATEGORICAL_RANGES.items():
        domain = by_name[key].int_domain
        assert (domain.min, domain.max) == (low, high), key
        assert features.integer_id_count(key) == high - low + 3


def test_tips_is_a_training_only_feature_and_strings_have_domains():
    schema = load_schema()
    environments = {f.name: list(f.not_in_environment) for f in schema.feature}
    assert environments[features.TIPS_KEY] == ["SERVING"]
    assert set(schema.default_environment) == {"TRAINING", "SERVING"}
    by_name = {f.name: f for f in schema.feature}
    domains = {d.name: list(d.value) for d in schema.string_domain}
    for key in features.VOCABULARY_FEATURES:
        assert by_name[key].domain in domains, key
    assert "Cash" in domains[by_name["payment_type"].domain]


def test_slices_are_raw_columns():
    assert set(features.SLICE_FEATURES) <= set(features.RAW_COLUMNS)


def test_every_raw_column_has_one_kind_matching_its_list():
    assert list(features.RAW_COLUMN_KINDS) == list(features.RAW_COLUMNS)
    for kind, columns in (
        ("int", features.RAW_INT_COLUMNS),
        ("float", features.RAW_FLOAT_COLUMNS),
        ("string", features.RAW_STRING_COLUMNS),
    ):
        assert {c for c, k in features.RAW_COLUMN_KINDS.items() if k == kind} == set(columns)
