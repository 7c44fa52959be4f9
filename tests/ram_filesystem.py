"""A Beam `FileSystem` for TensorFlow's in-memory `ram://` file system: a test tool, not production code.

Why: on Kubeflow the pipeline root, the data root and the serving directory are bucket URIs,
and every byte a component writes must go through `fileio` / `tf.io.gfile` / Beam's
`FileSystems`, never `os`, `open` or `shutil`. The TensorFlow here cannot reach a GCS
emulator, but it ships `ram://`, an in-memory file system that `tf.io.gfile` and TFX's
`fileio` resolve out of the box. Beam has no `ram` file system: this module adds one that
delegates to `tf.io.gfile`, so a whole pipeline (LocalDagRunner, in-memory DirectRunner, one
process) can run with its roots on `ram://` (tests/e2e/test_bucket_roots_e2e.py). Any code
that treats a URI as a local path then fails, or writes a folder named `ram:` on local disk.

Beam picks a file system by `scheme()` among the imported subclasses of
`apache_beam.io.filesystem.FileSystem`: importing this module registers it.

What TensorFlow's `ram://` does differently from a bucket (kept in mind by the tests):
- it lives in this process only (no worker process sees it);
- renaming a folder moves the folder's own entry and leaves every file below it where it
  was, where TensorFlow's GCS file system moves every object under the prefix (TFT's
  WriteTransformFn publishes its output by renaming a folder): `bucket_renames()` gives
  ram:// the bucket's behaviour while a test runs;
- a file's parent folders exist for `exists`/`isdir` as soon as the file does, but
  `listdir` and `walk` list only folders made with `makedirs` (so `create` makes them,
  as a bucket's listing would show them);
- `exists(p)` and `listdir(p)` match names by prefix (`ram://x/span-1` "exists" when only
  `ram://x/span-10` does): tests keep sibling names free of such prefixes;
- modification times are 0.
"""

from __future__ import annotations

import contextlib
import io
import posixpath
from unittest import mock

import tensorflow as tf
from apache_beam.io.filesystem import BeamIOError, CompressedFile, CompressionTypes, FileMetadata, FileSystem
from tensorflow.python.lib.io import file_io

SCHEME = "ram"
PREFIX = f"{SCHEME}://"


def _check(path: str) -> str:
    if not path.startswith(PREFIX):
        raise ValueError(f"{path!r} is not a {PREFIX} path")
    return path


def entries_below(folder: str):
    """(path, stat) of every file and folder below `folder`, at any depth, parents first.

    Globs one level deeper at a time rather than walking: a walk lists only the folders
    made with `makedirs`, while a glob sees every file's full name.
    """
    pattern = _check(folder).rstrip("/")
    while True:
        pattern += "/*"
        found = tf.io.gfile.glob(pattern)
        if not found:
            return
        for path in found:
            yield path, tf.io.gfile.stat(path)


def remove_tree(path: str) -> None:
    """Remove `path` and everything below it.

    `tf.io.gfile.rmtree` finds only folders made with `makedirs` and fails, or leaves files
    behind, below one that never was; ram:// removes any entry by its name.
    """
    for entry, _ in list(entries_below(path)) + [(path, None)]:
        with contextlib.suppress(tf.errors.NotFoundError):  # a folder never made has no entry
            tf.io.gfile.remove(entry)


_tf_rename = file_io.rename_v2


def _bucket_rename(src, dst, overwrite=False):
    """`tf.io.gfile.rename`, moving a ram:// folder with everything below it (as on gs://)."""
    src, dst = str(src), str(dst)
    if not (src.startswith(PREFIX) and tf.io.gfile.isdir(src)):
        return _tf_rename(src, dst, overwrite)
    if tf.io.gfile.exists(dst) and not overwrite:
        raise tf.errors.AlreadyExistsError(None, None, f"{dst} exists")
    tf.io.gfile.makedirs(dst)
    for path, stat in list(entries_below(src)):
        target = dst.rstrip("/") + path[len(src.rstrip("/")) :]
        if stat.is_directory:
            tf.io.gfile.makedirs(target)
        else:
            _tf_rename(path, target, True)
    remove_tree(src)  # the folders' own entries, left behind


@contextlib.contextmanager
def bucket_renames():
    """While open, renaming a ram:// folder moves every file below it, as on a bucket.

    TensorFlow's GCS file system renames a folder object by object; its ram:// moves the
    folder's own entry only. Files and other schemes are renamed by TensorFlow as before.
    """
    with (
        mock.patch.object(file_io, "rename_v2", _bucket_rename),
        mock.patch.object(tf.io.gfile, "rename", _bucket_rename),
    ):
        yield


def _each(operation: str, pairs, action) -> None:
    """Run `action` on every item of `pairs`; raise one BeamIOError naming every failure."""
    failures = {}
    for item in pairs:
        try:
            action(*item) if isinstance(item, tuple) else action(item)
        except Exception as error:  # noqa: BLE001 (Beam reports failures per path)
            failures[item] = error
    if failures:
        raise BeamIOError(f"{operation} operation failed", failures)


class _WriteChannel(io.RawIOBase):
    """A GFile open for writing that knows its position (ram:// files do not answer `tell`).

    Beam's compressed writer asks the position before its first byte.
    """

    mode = "wb"

    def __init__(self, path: str):
        super().__init__()
        self._file = tf.io.gfile.GFile(path, "wb")
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        self._file.write(data)
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        if not self.closed:
            self._file.flush()

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


class RamFileSystem(FileSystem):
    """`ram://` for Beam, over `tf.io.gfile`."""

    @classmethod
    def scheme(cls) -> str:
        return SCHEME

    def join(self, basepath: str, *paths: str) -> str:
        path = _check(basepath)
        for part in paths:
            path = path.rstrip("/") + "/" + part.lstrip("/")
        return path

    def split(self, path: str) -> tuple[str, str]:
        rest = _check(path.strip())[len(PREFIX) :].rstrip("/")
        head, _, tail = rest.rpartition("/")
        return PREFIX + head, tail

    def mkdirs(self, path: str) -> None:
        if tf.io.gfile.exists(path):
            raise OSError(f"{path} already exists")
        tf.io.gfile.makedirs(_check(path))

    def has_dirs(self) -> bool:
        return True

    def _list(self, dir_or_prefix: str):
        """Every file below `dir_or_prefix`, at any depth (as Beam's LocalFileSystem lists)."""
        try:
            for path, stat in entries_below(dir_or_prefix):
                if not stat.is_directory:
                    yield FileMetadata(path, stat.length, stat.mtime_nsec / 1e9)
        except tf.errors.OpError as error:
            raise BeamIOError("List operation failed", {dir_or_prefix: error}) from error

    def _path_open(self, path: str, mode: str, compression_type: str):
        compression_type = FileSystem._get_compression_type(path, compression_type)
        raw = _WriteChannel(_check(path)) if mode == "wb" else tf.io.gfile.GFile(_check(path), mode)
        if compression_type == CompressionTypes.UNCOMPRESSED:
            return raw
        return CompressedFile(raw, compression_type=compression_type)

    def create(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        tf.io.gfile.makedirs(posixpath.dirname(_check(path)))
        return self._path_open(path, "wb", compression_type)

    def open(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        return self._path_open(path, "rb", compression_type)

    def copy(self, source_file_names, destination_file_names) -> None:
        assert len(source_file_names) == len(destination_file_names)

        def copy_tree(source: str, destination: str) -> None:
            if tf.io.gfile.exists(destination):
                remove_tree(destination)
            if not tf.io.gfile.isdir(source):
                tf.io.gfile.makedirs(posixpath.dirname(destination))
                tf.io.gfile.copy(source, destination)
                return
            for found in self._list(source):
                copy_tree(found.path, destination.rstrip("/") + found.path[len(source.rstrip("/")) :])

        _each("Copy", zip(source_file_names, destination_file_names), copy_tree)

    def rename(self, source_file_names, destination_file_names) -> None:
        assert len(source_file_names) == len(destination_file_names)

        def rename(source: str, destination: str) -> None:
            tf.io.gfile.makedirs(posixpath.dirname(_check(destination)))
            tf.io.gfile.rename(_check(source), destination, overwrite=True)

        _each("Rename", zip(source_file_names, destination_file_names), rename)

    def exists(self, path: str) -> bool:
        return tf.io.gfile.exists(_check(path))

    def _stat(self, path: str, operation: str):
        try:
            return tf.io.gfile.stat(_check(path))
        except tf.errors.OpError as error:
            raise BeamIOError(f"{operation} operation failed", {path: error}) from error

    def size(self, path: str) -> int:
        return self._stat(path, "Size").length

    def last_updated(self, path: str) -> float:
        return self._stat(path, "Last updated").mtime_nsec / 1e9

    def checksum(self, path: str) -> str:
        """The file's size: ram:// keeps no checksum (Beam's own LocalFileSystem answers the same)."""
        return str(self.size(path))

    def metadata(self, path: str) -> FileMetadata:
        stat = self._stat(path, "Metadata")
        return FileMetadata(path, stat.length, stat.mtime_nsec / 1e9)

    def delete(self, paths) -> None:
        def delete(path: str) -> None:
            if not tf.io.gfile.exists(_check(path)):
                raise OSError(f"no such file or folder: {path}")
            remove_tree(path)

        _each("Delete", paths, delete)
