"""The batch-wise ExampleGen executor on real artifacts: the same examples TFX's CsvExampleGen makes.

`Executor.Do` runs on two embedded spans in a temp folder (DirectRunner). Every row comes out
exactly once, as the same tf.Example TFX's own CSV conversion builds from it (blank cells as
empty value lists), split about 2:1 by TFX's hash-bucket rule, deterministically.
"""

from __future__ import annotations

import csv
import os

import pytest
import tensorflow as tf
from tfx.components.example_gen.csv_example_gen import executor as tfx_csv
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import proto_utils
from tfx_bsl.coders import csv_decoder

from components.example_gen import executor as example_gen
from components.example_gen.driver import SPANS_PROPERTY
from data import embedded
from models import features, record_counts


def run_executor(data_root, out, spans: str, rows_per_batch: int | None = None, monkeypatch=None):
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    input_config = example_gen_pb2.Input(
        splits=[
            example_gen_pb2.Input.Split(
                name="all", pattern="|".join(f"span-{s}/*.csv" for s in spans.split(","))
            )
        ]
    )
    output_config = example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[
                example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=2),
                example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
            ]
        )
    )
    properties = {
        standard_component_specs.INPUT_BASE_KEY: str(data_root),
        standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(input_config),
        standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(output_config),
        SPANS_PROPERTY: spans,
    }
    if rows_per_batch and monkeypatch:
        monkeypatch.setattr(example_gen, "ROWS_PER_BATCH", rows_per_batch)
    example_gen.Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, properties)
    return examples


def read_split(examples, split: str) -> dict[str, list[bytes]]:
    folder = artifact_utils.get_split_uri([examples], split)
    return {
        name: list(
            tf.data.TFRecordDataset(os.path.join(folder, name), compression_type="GZIP").as_numpy_iterator()
        )
        for name in sorted(os.listdir(folder))
    }


def canonical(files: dict[str, list[bytes]]) -> list[bytes]:
    """Every record of a split, deterministically serialized and sorted.

    The C++ encoder writes a record's features in hash-map order, which may differ between
    calls: equal examples, not equal bytes.
    """
    return sorted(
        tf.train.Example.FromString(r).SerializeToString(deterministic=True)
        for rs in files.values()
        for r in rs
    )


def tfx_examples(path) -> list[tf.train.Example]:
    """TFX's own row-by-row conversion of a span file (the reference)."""
    types = {c: csv_decoder.ColumnType.INT for c in features.RAW_INT_COLUMNS}
    types.update({c: csv_decoder.ColumnType.FLOAT for c in features.RAW_FLOAT_COLUMNS})
    types.update({c: csv_decoder.ColumnType.STRING for c in features.RAW_STRING_COLUMNS})
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        infos = [csv_decoder.ColumnInfo(name, types[name]) for name in header]
        convert = tfx_csv._ParsedCsvToTfExample()
        return [e for row in reader for e in convert.process([c.encode() for c in row], infos)]


@pytest.fixture(scope="module")
def spans(tmp_path_factory):
    root = tmp_path_factory.mktemp("spans")
    embedded.materialize_spans(root)
    return root


def test_every_row_once_as_tfx_would_make_it_split_two_to_one(spans, tmp_path):
    examples = run_executor(spans, tmp_path / "out", "7,8")
    train, evaluation = read_split(examples, "train"), read_split(examples, "eval")
    ours = [
        tf.train.Example.FromString(r)
        for files in (train, evaluation)
        for records in files.values()
        for r in records
    ]
    reference = [e for span in (7, 8) for e in tfx_examples(spans / f"span-{span}" / embedded.SPAN_FILE_NAME)]
    assert len(ours) == len(reference) > 3000
    key = lambda e: e.SerializeToString(deterministic=True)  # noqa: E731
    assert sorted(map(key, ours)) == sorted(map(key, reference))
    blank = [e for e in ours if not e.features.feature["company"].bytes_list.value]
    assert blank and all(e.features.feature["company"].HasField("bytes_list") for e in blank)  # empty list
    eval_share = sum(len(r) for r in evaluation.values()) / len(ours)
    assert 0.30 < eval_share < 0.37
    assert artifact_utils.decode_split_names(examples.split_names) == ["train", "eval"]
    assert examples.get_string_custom_property("payload_format") == "FORMAT_TF_EXAMPLE"
    # Deflated at zlib's fastest level (GZIP_LEVEL = 1): a gzip header's XFL byte says 4 for it,
    # 0 for TensorFlow's default level 6 (RFC 1952; zlib's deflate sets it from the level).
    folder = artifact_utils.get_split_uri([examples], "train")
    headers = [open(os.path.join(folder, name), "rb").read(10) for name in train]
    assert headers and all(h[:2] == b"\x1f\x8b" and h[8] == 4 for h in headers)
    # Every file's record count, recorded beside the splits: the Trainer's plan reads it.
    for split, files in (("train", train), ("eval", evaluation)):
        folder = artifact_utils.get_split_uri([examples], split)
        paths = [os.path.join(folder, name) for name in files]
        assert record_counts.recorded_count(paths) == sum(len(r) for r in files.values())


def test_batches_change_files_not_examples_or_splits(spans, tmp_path, monkeypatch):
    whole = run_executor(spans, tmp_path / "whole", "8")
    again = run_executor(spans, tmp_path / "again", "8")
    small = run_executor(spans, tmp_path / "small", "8", rows_per_batch=500, monkeypatch=monkeypatch)
    for split in ("train", "eval"):
        one, many = read_split(whole, split), read_split(small, split)
        assert len(one) == 1 and len(many) == 4  # 1,875 rows in batches of 500
        assert canonical(one) == canonical(many)
    assert canonical(read_split(again, "eval")) == canonical(read_split(whole, "eval"))  # a stable split
    assert sorted(read_split(again, "eval")) == sorted(read_split(whole, "eval"))  # and file names


def test_a_bad_span_stops_before_beam(spans, tmp_path):
    data = tmp_path / "data"
    (data / "span-9").mkdir(parents=True)
    lines = (spans / "span-8" / embedded.SPAN_FILE_NAME).read_bytes().splitlines(keepends=True)
    (data / "span-9" / embedded.SPAN_FILE_NAME).write_bytes(lines[0])
    from components.shared import DataAnomalyError

    with pytest.raises(DataAnomalyError, match="span 9: .* has a header but no rows"):
        run_executor(data, tmp_path / "out", "9")
    assert not (tmp_path / "out" / "Split-train").exists() or not os.listdir(tmp_path / "out" / "Split-train")


def test_a_file_read_in_groups_gives_the_chunks_of_one_parse(spans, monkeypatch):
    """Small read blocks and parse groups: the same chunks, row for row, as the whole file at once."""
    path = str(spans / "span-8" / embedded.SPAN_FILE_NAME)
    whole = list(example_gen.csv_chunks(path, rows_per_batch=500, group_batches=100))
    monkeypatch.setattr(example_gen, "READ_BYTES", 1000)  # blocks end mid-line
    grouped = list(example_gen.csv_chunks(path, rows_per_batch=500, group_batches=2))
    assert [len(lines) for lines, _ in whole] == [len(lines) for lines, _ in grouped] == [500, 500, 500, 375]
    for (lines, batch), (grouped_lines, grouped_batch) in zip(whole, grouped):
        assert lines == grouped_lines
        assert batch.equals(grouped_batch)
    with open(path, "rb") as handle:
        assert [line for lines, _ in grouped for line in lines] == [
            line for line in handle.read().split(b"\n")[1:] if line.strip(b"\r")
        ]


def test_a_quoted_newline_names_the_file_and_its_lines(tmp_path):
    path = tmp_path / "data.csv"
    header = ",".join(sorted(features.RAW_COLUMN_KINDS))
    row = ",".join(
        "1" if features.RAW_COLUMN_KINDS[n] != "string" else "x" for n in sorted(features.RAW_COLUMN_KINDS)
    )
    quoted = row.replace("x", '"a\nb"', 1)
    path.write_bytes(f"{header}\n{row}\n{quoted}\n{row}\n".encode())
    from components.shared import DataAnomalyError

    with pytest.raises(
        DataAnomalyError, match=r"data.csv: lines 1\.\.4 after the header hold 3 CSV rows, not 4"
    ):
        list(example_gen.csv_chunks(str(path)))
