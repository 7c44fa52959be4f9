"""TFRecord files through `data/tfrecords.py`: compressed by name, read in part, framed by hand."""

from __future__ import annotations

import pytest
import tensorflow as tf

from data import tfrecords
from data.tfrecords import read_records


def test_chosen_records_are_read_without_the_rest(tmp_path, monkeypatch):
    records = [f"record-{i}".encode() for i in range(250)]
    files = [tmp_path / "a.gz", tmp_path / "b"]
    tfrecords.write_tfrecords(files[0], records[:100])  # gzipped: its name ends .gz
    tfrecords.write_tfrecords(files[1], records[100:])
    files = [str(f) for f in files]
    assert tfrecords.read_tfrecords(files) == records
    assert tfrecords.count_tfrecords(files) == 250
    rows = [249, 3, 100, 99, 0]  # across both files, out of order
    assert tfrecords.read_tfrecords_at(files, rows) == [records[r] for r in rows]
    with pytest.raises(IndexError, match=r"rows \[250\] are beyond the 250 records"):
        tfrecords.read_tfrecords_at(files, [1, 250])
    # With each file's count, the same records; a file holding none of the rows is not opened.
    assert tfrecords.read_tfrecords_at(files, rows, counts=[100, 150]) == [records[r] for r in rows]
    opened = []
    real = tfrecords.iter_tfrecords

    def iter_tfrecords(names):
        opened.extend(names)
        return real(names)

    monkeypatch.setattr(tfrecords, "iter_tfrecords", iter_tfrecords)
    assert tfrecords.read_tfrecords_at(files, [120, 101], counts=[100, 150]) == [records[120], records[101]]
    assert opened == [files[1]]
    with pytest.raises(IndexError, match=r"rows \[250\] are beyond the 250 records"):
        tfrecords.read_tfrecords_at(files, [1, 250], counts=[100, 150])
    with pytest.raises(IndexError, match=r"a\.gz: holds fewer than the 120 records .*record 110 of it"):
        tfrecords.read_tfrecords_at(files, [110], counts=[120, 130])


def test_written_files_are_tensorflows_own_compressed_by_their_name(tmp_path):
    records = [b"one", b"two" * 100]
    tfrecords.write_tfrecords(tmp_path / "a.gz", records, compression_level=1)
    tfrecords.write_tfrecords(tmp_path / "b.tfrecord", records)
    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"  # gzip's magic number
    gzipped = tf.data.TFRecordDataset(str(tmp_path / "a.gz"), compression_type="GZIP")
    assert list(gzipped.as_numpy_iterator()) == records
    assert list(tf.data.TFRecordDataset(str(tmp_path / "b.tfrecord")).as_numpy_iterator()) == records
    # The hand framing is the same format: TensorFlow reads it, and the framed reader reads TensorFlow's.
    (tmp_path / "c.tfrecord").write_bytes(b"".join(tfrecords.frame_record(r) for r in records))
    assert tfrecords.read_tfrecords([str(tmp_path / "c.tfrecord")]) == records
    assert list(read_records(tmp_path / "b.tfrecord")) == records
    with pytest.raises(ValueError, match=r"data\.bz2: a TFRecord file compressed"):
        tfrecords.write_tfrecords(tmp_path / "data.bz2", records)


def test_an_open_files_torn_tail_is_left_out_and_corruption_is_named(tmp_path):
    path = tmp_path / "predictions-x.tfrecord.partial"
    records = [b"one", b"two" * 100]
    path.write_bytes(
        b"".join(tfrecords.frame_record(r) for r in records) + tfrecords.frame_record(b"three")[:9]
    )
    assert list(read_records(path)) == records
    data = bytearray(path.read_bytes())
    data[14] ^= 0xFF  # inside the first record's data
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"corrupt record data at byte 0"):
        list(read_records(path))
