"""The examples a gate replays, a block at a time: every example replayed, at most a block held.

A gate replays every example of the eval split several times (in order, then in other
batchings). Held whole, the split's serialized examples and their raw features grow with the
data (`make bench-scale` prints each stage's peak memory). A `ReplaySource` cuts the split into
blocks of whole files of at most `BLOCK_EXAMPLES` examples and keeps one block in memory: its
serialized examples and what was derived from them (the raw-feature arrays). Replay plans keep
every batch inside one block (`serving.signature_replay`), so a pass loads each block once.
Below one block (the embedded sample, 10x) the whole split is one block, as before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from data.tfrecords import count_tfrecords, read_tfrecords
from models import record_counts

# Examples held at once: with their raw features, tens of MB (benchmarks/bench_gate.py).
BLOCK_EXAMPLES = 262_144


class ReplaySource:
    """Serialized examples in blocks; `examples(b)` and `derived(b, ...)` hold one block at a time.

    Rows are numbered across blocks (row `starts[b] + i` is example `i` of block `b`).
    """

    def __init__(self, loaders: Sequence[Callable[[], Sequence[bytes]]], sizes: Sequence[int]):
        self._loaders = list(loaders)
        self.sizes = [int(size) for size in sizes]
        self.starts = [int(start) for start in np.cumsum([0, *self.sizes])[:-1]]
        self.count = sum(self.sizes)
        self._block: int | None = None
        self._examples: np.ndarray | None = None
        self._derived: dict = {}
        self._kept: dict = {}  # key -> (make, {block: value}), kept across blocks

    def __len__(self) -> int:
        return self.count

    @classmethod
    def from_examples(cls, serialized: Sequence[bytes], block_examples: int = BLOCK_EXAMPLES) -> ReplaySource:
        """Examples already in memory, in blocks of `block_examples` (views, no copies)."""
        serialized = serialized if isinstance(serialized, Sequence | np.ndarray) else list(serialized)
        starts = range(0, max(len(serialized), 1), block_examples)
        sizes = [min(block_examples, len(serialized) - start) for start in starts]
        loaders = [functools.partial(_slice, serialized, start, size) for start, size in zip(starts, sizes)]
        return cls(loaders, sizes)

    @classmethod
    def from_files(cls, files: Sequence[str], block_examples: int = BLOCK_EXAMPLES) -> ReplaySource:
        """TFRecord files in blocks of whole files; nothing kept.

        The files' sizes come from the counts their writer recorded (our ExampleGen), else
        from a counting pass. A file of more than `block_examples` examples is a block of its own.
        """
        groups: list[list[str]] = []
        sizes: list[int] = []
        counts = record_counts.recorded_counts(files) or [count_tfrecords([path]) for path in files]
        for path, count in zip(files, counts):
            if groups and sizes[-1] + count <= block_examples:
                groups[-1].append(path)
                sizes[-1] += count
            else:
                groups.append([path])
                sizes.append(count)
        return cls([functools.partial(read_tfrecords, group) for group in groups], sizes)

    def block_of(self, row: int) -> int:
        return int(np.searchsorted(self.starts, row, side="right") - 1)

    def local(self, rows: np.ndarray) -> tuple[int, np.ndarray]:
        """(block, rows within it) of rows that lie in one block.

        Raises:
            ValueError: the rows span blocks (a plan must keep each batch in one block).
        """
        rows = np.asarray(rows)
        block = self.block_of(int(rows[0])) if len(rows) else 0
        local = rows - self.starts[block]
        if len(rows) and (local.min() < 0 or local.max() >= self.sizes[block]):
            raise ValueError(f"rows {int(rows.min())}..{int(rows.max())} span more than block {block}")
        return block, local

    def examples(self, block: int) -> np.ndarray:
        """The serialized examples of `block` (loaded unless it is the one held)."""
        if block != self._block:
            self._block, self._examples, self._derived = None, None, {}
            self._examples = np.array(list(self._loaders[block]()), dtype=object)
            if len(self._examples) != self.sizes[block]:
                raise ValueError(
                    f"block {block} holds {len(self._examples)} examples, {self.sizes[block]} counted"
                )
            self._block = block
            for make, values in self._kept.values():
                if block not in values:
                    values[block] = make(self._examples)
        return self._examples

    def keep(self, key, make: Callable[[np.ndarray], object]) -> None:
        """Compute `make(examples)` of each block as it is loaded, and keep it (small results).

        A replay pass loads every block anyway: what is kept costs no pass of its own.
        """
        self._kept.setdefault(key, (make, {}))

    def kept(self, key) -> list:
        """Every block's kept value of `key`, in block order (loading the blocks not seen yet)."""
        make, values = self._kept[key]
        for block in range(len(self.sizes)):
            if block not in values:
                values[block] = make(self.examples(block))
        return [values[block] for block in range(len(self.sizes))]

    def derived(self, block: int, key, make: Callable[[np.ndarray], object]):
        """`make(examples(block))`, computed once while the block is held."""
        examples = self.examples(block)
        if key not in self._derived:
            self._derived[key] = make(examples)
        return self._derived[key]


def _slice(serialized, start: int, size: int):
    return serialized[start : start + size]
