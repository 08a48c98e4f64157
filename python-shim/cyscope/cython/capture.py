"""File-descriptor level capture of everything written to fds 1 and 2.

Cython reports through ``sys.stderr`` (the Python object) while the C compiler and the
linker are child processes writing straight to the inherited descriptors; in a kernel
``sys.stderr`` is not fd 2 at all.  Both go into one temporary file here, so the text
keeps the order in which it was written and nothing reaches the notebook unseen.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings


class Captured:
    """Holds the captured text once the ``with`` block has ended."""

    text: str = ""


@contextlib.contextmanager
def capture_output():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed or odd stream must not stop a build
            pass
    holder = Captured()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = {fd: os.dup(fd) for fd in (1, 2)}
        old_streams = sys.stdout, sys.stderr
        text = io.TextIOWrapper(
            io.FileIO(sink.fileno(), "w", closefd=False), encoding="utf-8", errors="replace", write_through=True
        )
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            sys.stdout = sys.stderr = text
            with warnings.catch_warnings():
                # Import-time noise (distutils, pythran, numpy) is not compiler output.
                for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
                    warnings.simplefilter("ignore", category)
                yield holder
        finally:
            try:
                text.flush()
            finally:
                sys.stdout, sys.stderr = old_streams
                for fd, copy in saved.items():
                    os.dup2(copy, fd)
                    os.close(copy)
                text.detach()
            sink.seek(0)
            holder.text = sink.read().decode("utf-8", errors="replace")
