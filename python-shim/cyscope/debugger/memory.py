"""Read this process's memory without crashing on a bad address.

A pointer local may hold anything (garbage before it is set, a freed block, NULL): the
Variables panel must show "unreadable", never take the kernel down. ``process_vm_readv``
on our own pid fails with EFAULT for an unmapped address instead of faulting. Where it
is not allowed (a seccomp profile that blocks it), writing the range into a pipe does
the same job: ``write`` also answers EFAULT for memory it cannot read.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading

_libc = ctypes.CDLL(None, use_errno=True)


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


_readv = getattr(_libc, "process_vm_readv", None)
if _readv is not None:
    _readv.argtypes = [
        ctypes.c_int,
        ctypes.POINTER(_IoVec),
        ctypes.c_ulong,
        ctypes.POINTER(_IoVec),
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    _readv.restype = ctypes.c_ssize_t

_lock = threading.Lock()
_use_pipe = _readv is None
MAX_READ = 1 << 20


def _read_vm(address: int, size: int) -> bytes | None:
    global _use_pipe
    buf = ctypes.create_string_buffer(size)
    local = _IoVec(ctypes.cast(buf, ctypes.c_void_p), size)
    remote = _IoVec(address, size)
    got = _readv(os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    if got == size:
        return buf.raw
    if got < 0 and ctypes.get_errno() in (errno.EPERM, errno.ENOSYS, errno.EACCES):
        _use_pipe = True
        return _read_pipe(address, size)
    return None


def _read_pipe(address: int, size: int) -> bytes | None:
    out = bytearray()
    with _lock:
        r, w = os.pipe()
        try:
            os.set_blocking(w, False)
            while len(out) < size:
                chunk = min(size - len(out), 32768)
                n = _libc.write(w, ctypes.c_void_p(address + len(out)), ctypes.c_size_t(chunk))
                if n <= 0:
                    return None
                out += os.read(r, n)
        finally:
            os.close(r)
            os.close(w)
    return bytes(out)


def read(address: int, size: int) -> bytes | None:
    """``size`` bytes at ``address``, or None if any of them cannot be read."""
    if not address or size <= 0 or size > MAX_READ or address < 4096:
        return None
    if _use_pipe:
        return _read_pipe(address, size)
    return _read_vm(address, size)


def read_c_string(address: int, limit: int = 256) -> tuple[bytes, bool] | None:
    """The NUL-terminated bytes at ``address`` (at most ``limit``) and whether they were cut."""
    if not address:
        return None
    out = bytearray()
    step = 64
    while len(out) < limit:
        chunk = read(address + len(out), step)
        if chunk is None:
            # The string may end just before an unmapped page: read byte by byte.
            for k in range(step):
                one = read(address + len(out), 1)
                if one is None:
                    return (bytes(out), False) if out or k else None
                if one == b"\0":
                    return bytes(out), False
                out += one
            continue
        end = chunk.find(b"\0")
        if end >= 0:
            out += chunk[:end]
            return bytes(out[:limit]), len(out) > limit
        out += chunk
    return bytes(out[:limit]), True
