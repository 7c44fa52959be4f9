"""Prediction logs, the writing half: every answered example, as TFRecord files of tf.Examples.

Written off the request path by the model server and the KServe logger receiver; read back
by `monitoring/prediction_logs.py` (the reading half, for `python -m pipeline monitor`). The
record framing is `data/tfrecords.py`'s.

Format: one tf.Example per answered example, in TFRecord files under `<root>/prediction-logs/`.
The example holds the raw features as the client sent them (a missing value is an empty value
list, as ExampleGen writes a blank CSV cell; a serialized example's absent feature stays
absent), so TFDV reads the folder directly
(`tfdv.generate_statistics_from_tfrecord('<root>/prediction-logs/*.tfrecord')`) and so does
TFX's `ImportExampleGen` (input_base = the folder): the same format our ExampleGen writes, no
converter in between. TF Serving's PredictionLog protos would need one (TFDV reads
tf.Examples, not PredictionLogs). Beside the raw features, each example carries, under names
TFDV and the model never take as inputs (`__` prefix): the prediction, the model version, the
signature, the time (microseconds since the epoch), the request id and the client's key
(`trip_id`, never given to the model).

Files: `predictions-<UTC start>-<pid>-<n>.tfrecord`; the file being written is named
`*.tfrecord.partial` (a glob for `*.tfrecord` takes closed files only; the reader,
`monitoring.prediction_logs.read_logs`, also reads the complete records of the open one). A
file is closed at `max_file_bytes` or after `rotate_s`; then closed files older than
`max_age_s` go, and the oldest go while the folder exceeds `max_total_bytes`.

Off the request path: a request only draws the sample and puts one item on a bounded queue;
every `flush_s` (0.25 s) a writer thread takes whatever arrived, builds all its examples in
one columnar encode (C++) and appends them in one write. A full queue (a slow writer)
or a failed write (a full disk) drops records and counts them in
`taxi_prediction_log_dropped_total{reason}`; a request is never delayed or failed by logging.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from prometheus_client import Counter

from data.tfrecords import frame_record
from models import features

log = logging.getLogger("taxi.prediction_log")

LOG_FOLDER = "prediction-logs"
SUFFIX = ".tfrecord"
OPEN_SUFFIX = ".tfrecord.partial"

# The client's key: a field of a serving_raw instance (or column), or a feature of a
# serving_default example. Logged, never given to the model.
KEY_FIELD = "trip_id"

# Log-only features of each logged example.
PREDICTION = "__prediction"
MODEL_VERSION = "__model_version"
SIGNATURE = "__signature"
TIME_US = "__time_us"
REQUEST_ID = "__request_id"
KEY = "__key"
META_FEATURES = (PREDICTION, MODEL_VERSION, SIGNATURE, TIME_US, REQUEST_ID, KEY)

LOGGED = Counter("taxi_prediction_log_records_total", "Examples written to the prediction log")
DROPPED = Counter(
    "taxi_prediction_log_dropped_total",
    "Examples the prediction log dropped (queue_full: a slow writer; write_error: e.g. a full disk)",
    ["reason"],
)
SAMPLED_OUT = Counter("taxi_prediction_log_sampled_out_total", "Examples not logged by --log-sample-rate")


@dataclasses.dataclass(frozen=True)
class LogItem:
    """One answered request, as the request thread hands it over (no conversion work done)."""

    version: int
    signature: str
    request_id: str
    time_us: int
    predictions: np.ndarray  # (N,) float
    keep: np.ndarray  # (N,) bool: sampled for the log file
    serialized: Sequence[bytes] | None = None  # serving_default: the request's examples
    raw: dict | None = None  # serving_raw: the checked feature columns (tensors or arrays)
    keys: Sequence[str | None] | None = None  # serving_raw: the client's keys


# ------------------------------------------------------------------ records


def _arrow_column(values: np.ndarray):
    """One raw feature's values -> an Arrow array whose missing markers are nulls (absent)."""
    import pyarrow as pa

    if values.dtype.kind == "f":
        return pa.array(values.astype(np.float32), mask=np.isnan(values))
    if values.dtype.kind in "iu":
        return pa.array(values.astype(np.int64), mask=values == features.MISSING_INT)
    items = [v if isinstance(v, bytes) else str(v).encode() for v in values.tolist()]
    return pa.array(items, type=pa.binary(), mask=np.asarray([v == b"" for v in items], dtype=bool))


def _as_lists(array):
    """A primitive Arrow array -> one-value lists, a null -> an empty list (an absent feature)."""
    import pyarrow as pa

    valid = np.asarray(array.is_valid())
    offsets = np.concatenate([[0], np.cumsum(valid)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), array.drop_null())


def key_text(values) -> str | None:
    if not values:
        return None
    value = values[0]
    return value.decode() if isinstance(value, bytes) else str(value)


def build_examples(items: Sequence[LogItem]) -> list[bytes]:
    """The logged tf.Examples of requests of one signature, in order (sampling comes after).

    Columnar and in C++, over every request the writer drained at once: the requests' columns
    become one Arrow record batch (a missing marker is an empty list, which the encoder writes
    as an empty value list, as ExampleGen does), the log-only fields are columns beside them,
    and tfx_bsl's RecordBatchToExamplesEncoder writes the examples. serving_default requests'
    examples are decoded by tfx_bsl's decoder first, so both signatures log the same layout.
    """
    import pyarrow as pa
    from tfx_bsl.coders import example_coder

    if not items:
        return []
    counts = [len(item.predictions) for item in items]
    columns: dict[str, object] = {}
    keys = [
        k for item in items for k in (item.keys if item.keys is not None else [None] * len(item.predictions))
    ]
    if items[0].serialized is not None:
        batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(
            [record for item in items for record in item.serialized]
        )
        for name, column in zip(batch.schema.names, batch.columns):
            if name == KEY_FIELD:
                keys = [key_text(v) for v in column.to_pylist()]
            elif not pa.types.is_null(column.type) and not pa.types.is_null(column.type.value_type):
                columns[name] = column  # an all-absent feature stays absent
    else:
        for name in items[0].raw:
            values = [item.raw[name] for item in items]
            columns[name] = _arrow_column(
                np.concatenate([v.numpy() if hasattr(v, "numpy") else np.asarray(v) for v in values])
            )
    columns = {
        name: c if pa.types.is_list(c.type) or pa.types.is_large_list(c.type) else _as_lists(c)
        for name, c in columns.items()
    }

    def repeated(values, dtype):
        return np.repeat(np.asarray(values, dtype=dtype), counts)

    columns[PREDICTION] = pa.array(np.concatenate([item.predictions for item in items]).astype(np.float32))
    columns[MODEL_VERSION] = pa.array(repeated([item.version for item in items], np.int64))
    columns[SIGNATURE] = pa.array(repeated([item.signature.encode() for item in items], object), pa.binary())
    columns[TIME_US] = pa.array(repeated([item.time_us for item in items], np.int64))
    columns[REQUEST_ID] = pa.array(
        repeated([item.request_id.encode() for item in items], object), pa.binary()
    )
    columns[KEY] = pa.array([None if k is None else str(k).encode() for k in keys], type=pa.binary())
    for name in META_FEATURES:
        columns[name] = _as_lists(columns[name])
    batch = pa.RecordBatch.from_arrays(list(columns.values()), list(columns))
    return example_coder.RecordBatchToExamplesEncoder().encode(batch)


# ------------------------------------------------------------------ the logger


class PredictionLogger:
    """Samples answered examples on the request thread, writes them on its own thread."""

    def __init__(
        self,
        folder: str | os.PathLike,
        sample_rate: float = 1.0,
        max_file_bytes: int = 64 << 20,
        rotate_s: float = 300.0,
        max_total_bytes: int = 1 << 30,
        max_age_s: float = 30 * 86400.0,
        queue_size: int = 10_000,
        seed: int | None = None,
        observers: Sequence[Callable[[list[bytes], np.ndarray, np.ndarray], None]] = (),
        flush_s: float = 0.25,
    ):
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"the log sample rate must be in [0, 1], got {sample_rate}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sample_rate = sample_rate
        self.max_file_bytes = max_file_bytes
        self.rotate_s = rotate_s
        self.max_total_bytes = max_total_bytes
        self.max_age_s = max_age_s
        # Each observer gets every answered example: (records, predictions, versions).
        self.observers = list(observers)
        self.flush_s = flush_s
        self._rng = np.random.default_rng(seed)
        self._queue: queue.Queue[LogItem] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._handle = None
        self._path: Path | None = None
        self._opened_at = 0.0
        self._written = 0
        self._sequence = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    # -------------------------------------------------- request thread

    def submit(self, item_fields: dict) -> None:
        """Hand one answered request over; never blocks, never raises on a full queue."""
        count = len(item_fields["predictions"])
        keep = np.ones(count, bool) if self.sample_rate >= 1.0 else self._rng.random(count) < self.sample_rate
        item = LogItem(time_us=time.time_ns() // 1000, keep=keep, **item_fields)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            DROPPED.labels("queue_full").inc(int(keep.sum()))

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, close the open file (renamed to its final name)."""
        self._stop.set()
        self._thread.join(timeout)

    # -------------------------------------------------- writer thread

    def _run(self) -> None:
        while True:
            # Every flush_s, whatever arrived: one encode and one write for all of it, so the
            # per-request cost on this thread (which shares the GIL with requests) is small.
            stopping = self._stop.wait(self.flush_s)
            items = []
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if items:
                self._write(items)
            else:
                self._maybe_rotate()
            if stopping and self._queue.empty():
                self._close_file()
                return

    def _write(self, items: list[LogItem]) -> None:
        groups = [
            [item for item in items if item.serialized is None],
            [item for item in items if item.serialized is not None],
        ]
        for group in (g for g in groups if g):
            try:
                records = build_examples(group)
            except Exception:  # noqa: BLE001 - records we cannot build must not stop the writer
                log.exception("could not build the log records of %d request(s)", len(group))
                DROPPED.labels("build_error").inc(int(sum(item.keep.sum() for item in group)))
                continue
            predictions = np.concatenate([item.predictions for item in group])
            versions = np.repeat([item.version for item in group], [len(item.predictions) for item in group])
            for observer in self.observers:
                try:
                    observer(records, predictions, versions)
                except Exception:  # noqa: BLE001
                    log.exception("prediction-log observer failed")
            keep = np.concatenate([item.keep for item in group])
            kept = [r for r, k in zip(records, keep) if k]
            SAMPLED_OUT.inc(len(records) - len(kept))
            if not kept:
                continue
            try:
                self._maybe_rotate()
                if self._handle is None:
                    self._open_file()
                data = b"".join(frame_record(r) for r in kept)
                self._handle.write(data)
                self._written += len(data)
                LOGGED.inc(len(kept))
            except OSError as error:
                DROPPED.labels("write_error").inc(len(kept))
                log.warning("prediction log write failed (%s): %d records dropped", error, len(kept))
                self._abandon_file()

    def _open_file(self) -> None:
        self._sequence += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self._path = self.folder / f"predictions-{stamp}-{os.getpid()}-{self._sequence:06d}{OPEN_SUFFIX}"
        # Unbuffered: each batch is one write() whose failure (a full disk) is seen at once.
        self._handle = open(self._path, "ab", buffering=0)  # noqa: SIM115 - closed on rotation
        self._opened_at = time.monotonic()
        self._written = 0

    def _abandon_file(self) -> None:
        """After a failed write: close what is open (keeping its complete records)."""
        try:
            self._close_file()
        except OSError:
            self._handle, self._path = None, None

    def _maybe_rotate(self) -> None:
        if self._handle is None:
            return
        if self._written >= self.max_file_bytes or time.monotonic() - self._opened_at >= self.rotate_s:
            self._close_file()

    def _close_file(self) -> None:
        if self._handle is None:
            return
        handle, path = self._handle, self._path
        self._handle, self._path = None, None
        try:
            handle.close()
        finally:
            if path.stat().st_size:
                path.rename(path.with_name(path.name.removesuffix(OPEN_SUFFIX) + SUFFIX))
            else:
                path.unlink()
            enforce_caps(self.folder, self.max_total_bytes, self.max_age_s)


def enforce_caps(
    folder: Path, max_total_bytes: int, max_age_s: float, now: float | None = None
) -> list[Path]:
    """Delete closed log files older than `max_age_s`, then the oldest beyond `max_total_bytes`."""
    now = time.time() if now is None else now
    closed = sorted(folder.glob(f"predictions-*{SUFFIX}"), key=lambda p: (p.stat().st_mtime, p.name))
    removed = []
    for path in list(closed):
        if now - path.stat().st_mtime > max_age_s:
            path.unlink(missing_ok=True)
            closed.remove(path)
            removed.append(path)
    total = sum(p.stat().st_size for p in closed)
    while closed and total > max_total_bytes:
        oldest = closed.pop(0)
        total -= oldest.stat().st_size
        oldest.unlink(missing_ok=True)
        removed.append(oldest)
    if removed:
        log.info("prediction log caps: removed %d old file(s)", len(removed))
    return removed
