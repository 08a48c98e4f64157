"""Where compiled cells live, and keeping that folder private to the user."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import sysconfig
import time

ENV_CACHE_DIR = "CYSCOPE_CACHE_DIR"


class CacheDirError(OSError):
    """The cache folder exists but cannot be trusted (not ours, or a symlink)."""


def python_tag() -> str:
    soabi = sysconfig.get_config_var("SOABI") or ""
    return soabi or f"{sys.implementation.cache_tag}-{sys.platform}"


def cache_root() -> str:
    override = os.environ.get(ENV_CACHE_DIR)
    if override:
        return os.path.abspath(os.path.expanduser(override))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(base), "cyscope")


def _ensure_private(path: str) -> None:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise CacheDirError(f"cyscope cache folder {path} is not a plain directory; refusing to use it")
    if st.st_uid != os.getuid():
        raise CacheDirError(
            f"cyscope cache folder {path} belongs to uid {st.st_uid}, not to you; refusing to load code from it"
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        # Ours but readable or writable by others: repair it before anything is loaded from it.
        os.chmod(path, 0o700)


def cache_dir() -> str:
    """The per-interpreter cache folder, created 0700 (parents as needed), checked each call."""
    root = cache_root()
    parent = os.path.dirname(root)
    if not os.path.isdir(parent):
        os.makedirs(parent, mode=0o700, exist_ok=True)
    _ensure_private(root)
    tagged = os.path.join(root, python_tag())
    _ensure_private(tagged)
    return tagged


STALE_BUILD_SECONDS = 24 * 3600


def remove_stale_builds(root: str) -> None:
    """Drop ``.build-*`` folders left by kernels killed mid-build (a day old: no live build is that slow)."""
    limit = time.time() - STALE_BUILD_SECONDS
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".build-"):
            try:
                if entry.stat(follow_symlinks=False).st_mtime < limit:
                    shutil.rmtree(entry.path, ignore_errors=True)
            except OSError:
                pass
