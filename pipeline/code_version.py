"""A fingerprint of the code that Transform, Trainer and the custom components run.

User code is named by dotted path (no `module_file`), so TFX's cache key does not see it
change. The pipeline passes this fingerprint in Transform's and Trainer's `custom_config`:
editing any module under `models/`, `serving/`, `components/` or `tfma_batched/` makes them (and everything
after them, the gates included) run again, while an unchanged checkout stays fully cached.
The local runner (`pipeline/local_runner.py`) computes it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
# The packages whose code decides what a run computes (not the CLI or the operations).
FINGERPRINTED_PACKAGES = ("models", "serving", "components", "tfma_batched")


def code_fingerprint(*package_dirs: Path) -> str:
    """Short sha256 over the relative paths and bytes of every .py file under `package_dirs`.

    Args:
        *package_dirs: folders to hash; default the project's `FINGERPRINTED_PACKAGES`.
    """
    dirs = package_dirs or tuple(PROJECT_DIR / name for name in FINGERPRINTED_PACKAGES)
    digest = hashlib.sha256()
    for package_dir in dirs:
        for path in sorted(package_dir.rglob("*.py")):
            digest.update(str(path.relative_to(package_dir.parent)).encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()[:16]
