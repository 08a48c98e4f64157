"""Locate and load libcyscope.so with ctypes, and check its ABI version.

ctypes rather than a CPython extension module: one build of the library serves
every interpreter (the project's CPython 3.11.7 and Debian's 3.11.2, which the
SageMath kernel runs on) without compiling against each one's headers.

Loading never raises: :func:`status` says what happened, so callers can
degrade (RSS from /proc only) with a clear message instead of crashing.
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from .trusted_path import untrusted_reason

# Must match CYSCOPE_ABI_VERSION in native/include/cyscope.h.
EXPECTED_ABI = 1
LIBRARY_NAME = "libcyscope.so"
ENV_OVERRIDE = "CYSCOPE_NATIVE_LIB"

_PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class NativeStatus:
    loaded: bool
    abi: int | None
    path: str | None
    error: str | None

    def to_message(self) -> dict:
        return {"loaded": self.loaded, "abi": self.abi, "path": self.path, "error": self.error}


def candidate_paths() -> list[Path]:
    """Where the library may be, most specific first.

    1. $CYSCOPE_NATIVE_LIB (tests, unusual installs);
    2. inside the package (a wheel, or `npm run build` in a checkout);
    3. the CMake build folder of a checkout, for an interpreter that only has
       python-shim/ on sys.path (Debian's python3 for the Sage kernel).
    """
    paths = []
    override = os.environ.get(ENV_OVERRIDE)
    if override:
        paths.append(Path(override))
    paths.append(_PACKAGE_DIR / "_native" / LIBRARY_NAME)
    paths.append(_PACKAGE_DIR.parent.parent / "native" / "build" / LIBRARY_NAME)
    return paths


def unsafe_location_reason(path: Path) -> str | None:
    """Why loading `path` would let another user run code in this process.

    A shared object is code: refuse one that is, or sits below, a file or
    folder others could have replaced (group/world writable without the
    sticky bit, or owned by another non-root user). Symlinks are followed
    first, and every folder up to / counts: whoever can rename a folder can
    swap everything below it. Returns None when the location is safe.
    """
    return untrusted_reason(str(path.resolve()))


def _load(path: Path) -> tuple[ctypes.CDLL | None, NativeStatus]:
    # Load what was vetted: the resolved file, not a symlink that could be
    # re-pointed between the check and the load.
    path = path.resolve()
    reason = unsafe_location_reason(path)
    if reason:
        return None, NativeStatus(False, None, str(path), f"refused to load: {reason}")
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        return None, NativeStatus(False, None, str(path), f"cannot load: {exc}")
    try:
        lib.cyscope_abi_version.restype = ctypes.c_int
        abi = int(lib.cyscope_abi_version())
    except AttributeError:
        return None, NativeStatus(False, None, str(path), "not a cyscope library (no cyscope_abi_version)")
    if abi != EXPECTED_ABI:
        return None, NativeStatus(
            False, abi, str(path), f"ABI version {abi}, this cyscope needs {EXPECTED_ABI}: rebuild with `npm run build`"
        )
    lib.cyscope_read_rss.argtypes = [ctypes.POINTER(ctypes.c_uint64)]
    lib.cyscope_read_rss.restype = ctypes.c_int
    lib.cyscope_version.restype = ctypes.c_char_p
    return lib, NativeStatus(True, abi, str(path), None)


_lock = threading.Lock()
_cached: tuple[ctypes.CDLL | None, NativeStatus] | None = None


def library() -> ctypes.CDLL | None:
    """The loaded library, or None (see :func:`status` for why)."""
    return _load_once()[0]


def status() -> NativeStatus:
    return _load_once()[1]


def _load_once() -> tuple[ctypes.CDLL | None, NativeStatus]:
    global _cached
    with _lock:
        if _cached is None:
            _cached = _find_and_load()
        return _cached


def _find_and_load() -> tuple[ctypes.CDLL | None, NativeStatus]:
    tried = []
    for path in candidate_paths():
        if path.exists():
            # The first library found decides: silently falling through to an
            # older copy would hide the real problem.
            return _load(path)
        tried.append(str(path))
    return None, NativeStatus(
        False, None, None, f"{LIBRARY_NAME} not found (looked in {', '.join(tried)}); run `npm run build`"
    )


def _reset_for_tests() -> None:
    global _cached
    with _lock:
        _cached = None
