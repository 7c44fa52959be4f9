"""TFRecord files, read and written: the one module that knows the format.

Two ways in, for two kinds of file:

- Files that are complete (ExampleGen's splits, the Evaluator's metrics, replay data): read
  by TensorFlow's C++ record iterator (`iter_tfrecords` and the helpers built on it), which
  checks the CRCs and hands out bytes without one eager tensor per record (the file-wise
  reader of `components/file_batch_reads/` is built on it: `benchmarks/bench_reads.py`);
  written by TensorFlow's `TFRecordWriter` (`write_tfrecords`). A file named `*.gz` is
  GZIP-compressed, as Beam's AUTO rule reads it.
- Files still being appended to (the model server's prediction logs): framed here in Python
  (`frame_record`, one `write()` per batch, no TensorFlow on the writer thread) and read back
  with `read_records`, which leaves out a torn tail that a reader of a complete file would
  call corrupt.

Both frame a record the same way, TFRecord's own: the length (8 bytes, little-endian), its
masked CRC-32C, the data, the data's masked CRC-32C; so TensorFlow, TFDV and Beam read every
file either way writes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator, Sequence

import google_crc32c
import numpy as np

# File name endings TensorFlow's record reader reads, as Beam's AUTO rule names them, and the
# ones Beam would read that TensorFlow's reader does not.
_COMPRESSION_BY_SUFFIX = {".gz": "GZIP"}
_UNREADABLE_SUFFIXES = (".bz2", ".deflate", ".zst", ".zstd", ".lzma", ".xz", ".snappy")


def tfrecord_compression(path: str | os.PathLike) -> str:
    """TensorFlow's compression type for a TFRecord file, from its name as Beam would read it."""
    lowered = str(path).lower()
    for suffix, kind in _COMPRESSION_BY_SUFFIX.items():
        if lowered.endswith(suffix):
            return kind
    if lowered.endswith(_UNREADABLE_SUFFIXES):
        raise ValueError(f"{path}: a TFRecord file compressed in a way this reader does not read")
    return ""


# ------------------------------------------------------------------ complete files, via TensorFlow


def iter_tfrecords(files: Sequence[str]) -> Iterator[bytes]:
    """The records of TFRecord files, in order (GZIP-compressed when named *.gz).

    The record iterator hands out bytes straight from C++ (CRCs checked), with none of a
    TFRecordDataset's one eager tensor per record.
    """
    import tensorflow as tf
    from tensorflow.python.lib.io import tf_record

    for file in files:
        options = tf.io.TFRecordOptions(compression_type=tfrecord_compression(file))
        yield from tf_record.tf_record_iterator(str(file), options)


def read_tfrecords(files: Sequence[str]) -> list[bytes]:
    """All records of (GZIP-compressed when named *.gz) TFRecord files."""
    return list(iter_tfrecords(files))


def count_tfrecords(files: Sequence[str]) -> int:
    """How many records the files hold, none of them kept."""
    return sum(1 for _ in iter_tfrecords(files))


def read_tfrecords_at(
    files: Sequence[str], rows: Sequence[int], counts: Sequence[int] | None = None
) -> list[bytes]:
    """The records at positions `rows` (in that order) of the files read as one sequence.

    Only those records are kept: `read_tfrecords(files)[rows]` without holding the split.
    With `counts` (each file's records, as its writer recorded them) a file holding none of
    `rows` is not opened and a file is read only up to its last wanted record: a hundred
    calibration rows of a ten-million-row split read a fraction of it, not all of it.

    Raises:
        IndexError: naming the rows beyond the records there, or the file that holds fewer
            records than `counts` says.
    """
    wanted = sorted({int(row) for row in rows})
    if counts is None:
        found, seen = _collect(iter_tfrecords(files), 0, wanted)
    else:
        if len(counts) != len(files):
            raise ValueError(f"{len(counts)} record counts for {len(files)} files")
        found, seen = {}, int(sum(counts))
        bounds = np.cumsum([0, *counts])
        for index, file in enumerate(files):
            low, high = np.searchsorted(wanted, bounds[index : index + 2])
            mine = wanted[low:high]
            if mine:
                got, _ = _collect(iter_tfrecords([file]), int(bounds[index]), mine)
                if len(got) < len(mine):
                    raise IndexError(
                        f"{file}: holds fewer than the {counts[index]} records recorded for it "
                        f"(record {min(set(mine) - set(got)) - int(bounds[index])} of it is missing)"
                    )
                found.update(got)
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise IndexError(f"rows {missing[:5]} are beyond the {seen} records there")
    return [found[int(row)] for row in rows]


def _collect(records: Iterable[bytes], first: int, wanted: list[int]) -> tuple[dict[int, bytes], int]:
    """({position: record} for the `wanted` positions, numbered from `first`; records read).

    Stops after the last wanted record. One dict lookup a record: this loop runs once per
    record of the files it reads.
    """
    remaining, found, position = set(wanted), {}, first
    if not remaining:
        return found, 0
    for record in records:
        if position in remaining:
            found[position] = record
            remaining.discard(position)
            if not remaining:
                return found, position - first + 1
        position += 1
    return found, position - first


def write_tfrecords(
    path: str | os.PathLike, records: Iterable[bytes], compression_level: int | None = None
) -> None:
    """Write `records` as one TFRecord file (GZIP-compressed when named *.gz).

    Args:
        path: the file (a local path or a bucket URI: TensorFlow's file system writes it).
        records: the serialized records, in order.
        compression_level: zlib's level for a *.gz file (None: TensorFlow's default).
    """
    import tensorflow as tf

    compression = tfrecord_compression(path)
    options = tf.io.TFRecordOptions(
        compression_type=compression,
        compression_level=compression_level if compression and compression_level is not None else None,
    )
    with tf.io.TFRecordWriter(str(path), options=options) as writer:
        for record in records:
            writer.write(record)


# ------------------------------------------------------------------ framing, for appended files


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC-32C of `data`."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """One TFRecord: length, its masked CRC-32C, the data, its masked CRC-32C."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


def read_records(path: str | os.PathLike) -> Iterator[bytes]:
    """The complete, intact records of an uncompressed TFRecord file (a torn tail is left out).

    For a file another process may still be appending to: a record whose end is not yet
    written ends the file, where TensorFlow's reader would call it corrupt.

    Raises:
        ValueError: a corrupt record before the end of the file (named with its offset).
    """
    with open(path, "rb") as handle:
        data = handle.read()
    offset = 0
    while offset + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        (length_crc,) = struct.unpack_from("<I", data, offset + 8)
        end = offset + 12 + length + 4
        if length_crc != masked_crc(data[offset : offset + 8]):
            raise ValueError(f"{path}: corrupt record header at byte {offset}")
        if end > len(data):
            return  # A record still being written.
        record = data[offset + 12 : offset + 12 + length]
        (data_crc,) = struct.unpack_from("<I", data, offset + 12 + length)
        if data_crc != masked_crc(record):
            raise ValueError(f"{path}: corrupt record data at byte {offset}")
        yield record
        offset = end
