"""Where crash reports live: one private folder per kernel, found again after a restart.

Layout::

    <runtime>/cyscope-crash/              0700, checked (ours, not a symlink)
        <kernel key>/                     0700: one kernel of one notebook
            crash-<id>.json               a report (written atomically)
            crash-<id>.shown              the frontend has been sent it
            .pending-<pid>.json           the in-process report while gdb runs
            .tracer-<pid>.log             gdb's output

``<runtime>`` is Jupyter's runtime folder (where the connection files live) or
``$CYSCOPE_CRASH_DIR``. The kernel key is the connection file's name: JupyterLab
restarts a kernel with the same connection file, so the restarted kernel of the
same notebook finds the reports of the one that died. Outside a kernel (plain
IPython) the key is the process id.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time

ENV_DIR = "CYSCOPE_CRASH_DIR"
KEEP_PER_KERNEL = 20  # reports kept per kernel (oldest removed first)
STALE_DAYS = 14  # a kernel folder untouched this long is removed


class CrashDirError(OSError):
    """The reports folder exists but cannot be trusted."""


def runtime_root() -> str:
    override = os.environ.get(ENV_DIR)
    if override:
        return os.path.abspath(os.path.expanduser(override))
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        base = jupyter_runtime_dir()
    except Exception:  # jupyter_core missing (plain IPython): its rule, by hand
        base = os.environ.get("JUPYTER_RUNTIME_DIR") or os.path.join(
            os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share"),
            "jupyter",
            "runtime",
        )
    return os.path.join(os.path.abspath(base), "cyscope-crash")


def kernel_key(ipython=None) -> tuple[str, str | None]:
    """(key, connection file) of the kernel this process serves; ("process-<pid>", None) outside one."""
    connection = None
    if ipython is not None and getattr(ipython, "kernel", None) is not None:
        try:
            from ipykernel.connect import get_connection_file

            connection = os.path.abspath(get_connection_file())
        except Exception:
            connection = None
    if not connection:
        return f"process-{os.getpid()}", None
    name = os.path.basename(connection)
    if name.endswith(".json"):
        name = name[: -len(".json")]
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:120] or "kernel", connection


def ensure_private(path: str) -> None:
    """Create ``path`` 0700 if needed; refuse it unless it is our own plain folder."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise CrashDirError(f"cyscope crash folder {path} is not a plain directory; refusing to use it")
    if st.st_uid != os.getuid():
        raise CrashDirError(f"cyscope crash folder {path} belongs to uid {st.st_uid}, not to you")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)


def kernel_dir(key: str, root: str | None = None) -> str:
    root = root or runtime_root()
    parent = os.path.dirname(root)
    if not os.path.isdir(parent):
        os.makedirs(parent, mode=0o700, exist_ok=True)
    ensure_private(root)
    path = os.path.join(root, key)
    ensure_private(path)
    return path


def report_paths(directory: str) -> list[str]:
    """This kernel's report files, oldest first (by the crash time in the id)."""
    try:
        names = [n for n in os.listdir(directory) if n.startswith("crash-") and n.endswith(".json")]
    except OSError:
        return []
    return [os.path.join(directory, n) for n in sorted(names, key=_sort_key)]


def _sort_key(name: str):
    # crash-<unix ms>-<pid>-<tid>.json
    parts = name[len("crash-") : -len(".json")].split("-")
    try:
        return (int(parts[0]), name)
    except (ValueError, IndexError):
        return (0, name)


def read_report(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_report(path: str, report: dict) -> None:
    """Replace a report atomically (a reader never sees half a file)."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, path)


def shown_marker(report_path: str) -> str:
    return report_path[: -len(".json")] + ".shown"


def mark_shown(report_path: str) -> None:
    try:
        fd = os.open(shown_marker(report_path), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        os.close(fd)
    except OSError:
        pass


def is_shown(report_path: str) -> bool:
    return os.path.exists(shown_marker(report_path))


def prune(directory: str, root: str | None = None) -> None:
    """Keep the newest reports of this kernel; drop kernel folders nobody touched for weeks."""
    paths = report_paths(directory)
    for old in paths[:-KEEP_PER_KERNEL] if len(paths) > KEEP_PER_KERNEL else []:
        for p in (old, shown_marker(old)):
            try:
                os.unlink(p)
            except OSError:
                pass
    root = root or os.path.dirname(directory)
    limit = time.time() - STALE_DAYS * 86400
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.path == directory or not entry.is_dir(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_mtime < limit:
                for name in os.listdir(entry.path):
                    os.unlink(os.path.join(entry.path, name))
                os.rmdir(entry.path)
        except OSError:
            pass
