"""A fingerprint of the user code that Transform and Trainer run.

User code is named by dotted path (no `module_file`), so TFX's cache key does not see it
change. The pipeline passes this fingerprint in both components' `custom_config`: editing
any module under `components/` makes them (and everything after them) run again, while an
unchanged checkout stays fully cached.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def code_fingerprint(package_dir: Path = PACKAGE_DIR) -> str:
    """Short sha256 over the relative paths and bytes of every .py file under `package_dir`."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(str(path.relative_to(package_dir)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]
