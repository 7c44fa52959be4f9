"""The test tool `tests/ram_filesystem.py` through Beam's own `FileSystems` API and a Beam pipeline.

The bucket-roots e2e test trusts it to behave as Beam's file systems do, so each operation
a Beam or TFX component uses on an artifact URI is checked here against `tf.io.gfile`.
"""

from __future__ import annotations

import gzip
import uuid

import apache_beam as beam
import pytest
import ram_filesystem
import tensorflow as tf
from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to


@pytest.fixture
def root():
    """A fresh ram:// folder, emptied afterwards (ram:// lives as long as the process)."""
    path = f"ram://unit-{uuid.uuid4().hex}"
    yield path
    if tf.io.gfile.exists(path):
        FileSystems.delete([path])


def write(path: str, content: bytes, compression=CompressionTypes.AUTO) -> None:
    with FileSystems.create(path, compression_type=compression) as handle:
        handle.write(content)


def read(path: str, compression=CompressionTypes.AUTO) -> bytes:
    with FileSystems.open(path, compression_type=compression) as handle:
        return handle.read(1 << 20)  # Beam's compressed reader takes a size


def test_beam_resolves_the_ram_scheme_to_the_tool():
    assert isinstance(FileSystems.get_filesystem("ram://a/b"), ram_filesystem.RamFileSystem)
    assert FileSystems.join("ram://a/b/", "c", "/d") == "ram://a/b/c/d"
    assert FileSystems.split("ram://a/b/c.txt") == ("ram://a/b", "c.txt")
    assert FileSystems.split("ram://a/") == ("ram://", "a")


def test_create_and_open_plain_and_compressed(root):
    write(f"{root}/plain.txt", b"hello")
    assert tf.io.gfile.GFile(f"{root}/plain.txt", "rb").read() == b"hello"
    assert read(f"{root}/plain.txt") == b"hello"
    # AUTO compresses by the name's suffix, as Beam's sinks and sources rely on.
    write(f"{root}/deep/er/auto.gz", b"zipped " * 100)
    stored = tf.io.gfile.GFile(f"{root}/deep/er/auto.gz", "rb").read()
    assert stored[:2] == b"\x1f\x8b" and gzip.decompress(stored) == b"zipped " * 100
    assert read(f"{root}/deep/er/auto.gz") == b"zipped " * 100
    # An explicit GZIP whatever the name; UNCOMPRESSED returns the stored bytes.
    write(f"{root}/explicit", b"x" * 50, CompressionTypes.GZIP)
    assert read(f"{root}/explicit", CompressionTypes.GZIP) == b"x" * 50
    assert read(f"{root}/explicit", CompressionTypes.UNCOMPRESSED)[:2] == b"\x1f\x8b"
    # create() makes the parent folders, so a listing shows them as a bucket's would.
    assert tf.io.gfile.listdir(root) == ["deep", "explicit", "plain.txt"]


def test_match_with_globs_and_limits(root):
    for name in ("a/1.csv", "a/2.csv", "a/3.txt", "b/1.csv", "top.csv"):
        write(f"{root}/{name}", name.encode())
    # A file written by TensorFlow without its folders made first is matched too.
    with tf.io.gfile.GFile(f"{root}/c/unmade/4.csv", "wb") as handle:
        handle.write(b"4")

    def paths(pattern, limit=None):
        [result] = FileSystems.match([pattern], [limit] if limit else None)
        return sorted(m.path[len(root) + 1 :] for m in result.metadata_list)

    assert paths(f"{root}/a/*.csv") == ["a/1.csv", "a/2.csv"]
    assert paths(f"{root}/*/*.csv") == ["a/1.csv", "a/2.csv", "b/1.csv"]
    assert paths(f"{root}/*.csv") == ["top.csv"]
    assert paths(f"{root}/**.csv") == ["a/1.csv", "a/2.csv", "b/1.csv", "c/unmade/4.csv", "top.csv"]
    assert paths(f"{root}/a/") == ["a/1.csv", "a/2.csv", "a/3.txt"]
    assert paths(f"{root}/a/?.csv") == ["a/1.csv", "a/2.csv"]
    assert len(paths(f"{root}/a/*", limit=2)) == 2
    assert paths(f"{root}/a/3.txt") == ["a/3.txt"]  # no glob: the file itself
    assert paths(f"{root}/nothing/*") == []
    [metadata] = FileSystems.match([f"{root}/a/3.txt"])[0].metadata_list
    assert metadata.size_in_bytes == len(b"a/3.txt")


def test_metadata_size_checksum_and_time(root):
    write(f"{root}/f.bin", b"12345")
    assert FileSystems.exists(f"{root}/f.bin") and not FileSystems.exists(f"{root}/g.bin")
    assert FileSystems.get_filesystem(root).size(f"{root}/f.bin") == 5
    assert FileSystems.checksum(f"{root}/f.bin") == "5"
    assert FileSystems.last_updated(f"{root}/f.bin") == 0.0  # ram:// keeps no times
    assert FileSystems.get_filesystem(root).metadata(f"{root}/f.bin").size_in_bytes == 5
    with pytest.raises(BeamIOError):
        FileSystems.get_filesystem(root).size(f"{root}/g.bin")


def test_mkdirs_rename_copy_delete(root):
    FileSystems.mkdirs(f"{root}/made/here")
    assert tf.io.gfile.isdir(f"{root}/made/here")
    with pytest.raises(IOError):
        FileSystems.mkdirs(f"{root}/made/here")  # the leaf exists: Beam's contract
    write(f"{root}/tmp/part-0", b"zero")
    write(f"{root}/tmp/part-1", b"one")
    FileSystems.rename([f"{root}/tmp/part-0"], [f"{root}/out/final-0"])
    assert read(f"{root}/out/final-0") == b"zero"
    assert not tf.io.gfile.exists(f"{root}/tmp/part-0")
    FileSystems.copy([f"{root}/tmp"], [f"{root}/copied"])  # a folder, recursively
    FileSystems.copy([f"{root}/out/final-0"], [f"{root}/copied/final-0"])
    assert sorted(tf.io.gfile.listdir(f"{root}/copied")) == ["final-0", "part-1"]
    assert read(f"{root}/tmp/part-1") == b"one"  # the source stays
    FileSystems.delete([f"{root}/tmp", f"{root}/out/final-0"])  # a folder and a file
    assert not tf.io.gfile.exists(f"{root}/tmp") and not tf.io.gfile.exists(f"{root}/out/final-0")
    with pytest.raises(BeamIOError, match="Delete"):
        FileSystems.delete([f"{root}/tmp"])
    with pytest.raises(BeamIOError, match="Rename"):
        FileSystems.rename([f"{root}/nothing"], [f"{root}/else"])


def test_a_beam_pipeline_writes_and_reads_gzipped_tfrecords(root):
    records = [f"record-{i}".encode() for i in range(100)]
    with TestPipeline() as pipeline:
        _ = (
            pipeline
            | beam.Create(records)
            | beam.io.WriteToTFRecord(f"{root}/out/data", file_name_suffix=".gz", num_shards=3)
        )
    written = sorted(tf.io.gfile.listdir(f"{root}/out"))
    assert written == [f"data-0000{i}-of-00003.gz" for i in range(3)]  # no temp folder left
    for name in written:  # gzip, as TensorFlow reads it
        assert tf.io.gfile.GFile(f"{root}/out/{name}", "rb").read()[:2] == b"\x1f\x8b"
    from_tf = list(tf.data.TFRecordDataset(tf.io.gfile.glob(f"{root}/out/*"), compression_type="GZIP"))
    assert sorted(r.numpy() for r in from_tf) == sorted(records)
    with TestPipeline() as pipeline:
        read_back = pipeline | beam.io.ReadFromTFRecord(f"{root}/out/data-*")
        assert_that(read_back, equal_to(records))


def test_bucket_renames_move_a_folder_with_everything_below_it(root):
    with tf.io.gfile.GFile(f"{root}/tmp/unmade/a.txt", "wb") as handle:  # no makedirs first
        handle.write(b"a")
    write(f"{root}/tmp/made/b.txt", b"b")
    tf.io.gfile.makedirs(f"{root}/tmp/empty")
    with ram_filesystem.bucket_renames():
        tf.io.gfile.rename(f"{root}/tmp", f"{root}/published")
        tf.io.gfile.rename(f"{root}/published/made/b.txt", f"{root}/b.txt")  # a file, as before
    assert read(f"{root}/published/unmade/a.txt") == b"a" and read(f"{root}/b.txt") == b"b"
    assert tf.io.gfile.isdir(f"{root}/published/empty")
    assert not tf.io.gfile.exists(f"{root}/tmp")
    # Without it, TensorFlow's ram:// moves the folder's own entry and leaves its files.
    tf.io.gfile.makedirs(f"{root}/plain")
    write(f"{root}/plain/c.txt", b"c")
    tf.io.gfile.rename(f"{root}/plain", f"{root}/moved")
    assert tf.io.gfile.exists(f"{root}/plain/c.txt") and not tf.io.gfile.exists(f"{root}/moved/c.txt")
