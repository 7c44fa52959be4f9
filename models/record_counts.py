"""Record counts an Examples artifact's writer recorded beside its split folders.

Our ExampleGen knows how many records it put in every file; the Trainer needs the size of
its split to plan (models/trainer.py). Recording the counts once spares the Trainer a pass
over every record of the split (10M at 1,000x). A reader uses them only when every file it
reads is listed; otherwise it counts for itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from tfx.dsl.io import fileio

RECORD_COUNTS_FILE = "record_counts.json"


def write_record_counts(artifact_uri: str, counts: dict[str, int]) -> str:
    """Write `{"files": {path relative to the artifact: records}}` beside the split folders."""
    path = os.path.join(artifact_uri, RECORD_COUNTS_FILE)
    base = artifact_uri.rstrip("/") + "/"
    relative = {p[len(base) :] if p.startswith(base) else p: int(n) for p, n in sorted(counts.items())}
    with fileio.open(path, "w") as handle:
        handle.write(json.dumps({"files": relative}, indent=0, sort_keys=True))
    return path


def recorded_counts(files: Sequence[str]) -> list[int] | None:
    """Each file's records as their writer recorded them (one read of the record), or None.

    None unless every file is listed in the `RECORD_COUNTS_FILE` two folders up (the
    artifact of a `<artifact>/Split-<name>/<file>` layout).
    """
    folders = {os.path.dirname(os.path.dirname(f)) for f in files}
    if len(folders) != 1:
        return None
    artifact_uri = folders.pop()
    path = os.path.join(artifact_uri, RECORD_COUNTS_FILE)
    if not fileio.exists(path):
        return None
    with fileio.open(path) as handle:
        counts = json.load(handle).get("files", {})
    base = artifact_uri.rstrip("/") + "/"
    try:
        return [counts[f[len(base) :]] for f in files]
    except KeyError:
        return None


def recorded_count(files: Sequence[str]) -> int | None:
    """The records in `files` as their writer recorded them, or None (see `recorded_counts`)."""
    counts = recorded_counts(files)
    return None if counts is None else sum(counts)
