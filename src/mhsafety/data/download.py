"""The public test set: where it lives upstream, its checksum, the local cache."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import DataError
from ..io import atomic_write, sha256_file

# The public test set, pinned to the upstream commit the benchmark describes.
UPSTREAM_COMMIT = "9ada1c51013c4d89b679211e9bd3c7e8e028a440"
TEST_SET_URL = (
    f"https://raw.githubusercontent.com/qiuhuachuan/DialogueSafety/{UPSTREAM_COMMIT}/data/test.json"
)
TEST_SET_SHA256 = "ee8fbf5094a98f75d10aff5c65510a7fd35fc7f80df552448a21ae3aee01b841"
CACHE_ENV = "MHSAFETY_CACHE_DIR"



def cache_dir() -> Path:
    """``$MHSAFETY_CACHE_DIR`` if set, else ``~/.cache/mhsafety``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mhsafety"


def cached_test_set_path() -> Path:
    return cache_dir() / "dialogue-safety" / UPSTREAM_COMMIT[:12] / "test.json"


def download_test_set(url: str | None = None, sha256: str = TEST_SET_SHA256,
                      dest: str | os.PathLike[str] | None = None, timeout: float = 30.0,
                      force: bool = False) -> Path:
    """Fetch the public test set, verify its sha256 and store it atomically in the cache.

    A file already in place with the right checksum is not fetched again. ``url`` defaults
    to the pinned upstream file.
    """
    url = url or TEST_SET_URL
    target = Path(dest) if dest else cached_test_set_path()
    if target.exists() and not force and sha256_file(target) == sha256:
        return target
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = response.read()
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"could not download the test set from {url} ({reason}); "
            "check the network or pass --data PATH to a local copy"
        ) from None
    actual = hashlib.sha256(payload).hexdigest()
    if actual != sha256:
        raise DataError(
            f"the file downloaded from {url} has sha256 {actual}, expected {sha256}; "
            "it was not saved"
        )
    with atomic_write(target, "wb") as handle:
        handle.write(payload)
    return target


def resolve_data(path: str | os.PathLike[str] | None) -> Path:
    """The dataset a command should read: ``path`` if given, else the cached test set.

    With no cached copy, try to download it; when that fails too, say so in one sentence.
    """
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise DataError(f"{p}: no such file")
        return p
    cached = cached_test_set_path()
    if cached.exists():
        return cached
    try:
        return download_test_set()
    except DataError as exc:
        raise DataError(
            f"no data file given and no cached test set at {cached}, and downloading it failed "
            f"({exc}); pass --data PATH or run `mhsafety data download` with network access"
        ) from None
