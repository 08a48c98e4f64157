"""What other parts of cyscope add to every ``%%cython`` build: magic options, phases, hooks.

The build pipeline (:mod:`.pipeline`) knows nothing about breakpoints or crash reports;
those features subclass :class:`BuildPlugin` and :func:`register` an instance when
cyscope loads. A plugin can

- add options to the magic (``add_arguments``); their values reach the plugin as
  ``opts.plugin_args[dest]``;
- take part in a build (``key``): it returns ``None`` to stay out of this build, or a
  JSON-able value that joins the cache key (so a build with and one without the plugin
  are different modules);
- adjust the build before Cython runs (``configure``: flags, folders, libraries, extra
  sources, on the :class:`~.pipeline.BuildJob`);
- rewrite the generated C between Cython and the C compiler (``process_c``, e.g. to insert
  breakpoint probes) and report diagnostics on cell lines;
- act on the loaded module, built or taken from the cache (``loaded``).

Hooks of active plugins run in registration order. A plugin's exception fails the
build with a clear message naming the plugin (the kernel carries on).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

_lock = threading.Lock()
_plugins: list[BuildPlugin] = []


class BuildPlugin:
    """Base class: every hook does nothing. ``name`` appears in messages and keys the plugin's cache-key entry."""

    name = "plugin"

    def add_arguments(self, add_argument: Callable[..., Any]) -> None:
        """Add magic options: ``add_argument("--catch-crashes", action="store_true", help=...)`` (argparse)."""

    def key(self, opts) -> Any:
        """``None``: not part of this build. Anything else: part of it, and of its cache key (JSON-able)."""
        return None

    def configure(self, job) -> None:
        """Before Cython runs: change ``job.compile_args``, ``job.link_args``, ``job.include_dirs``, ... ."""

    def process_c(self, job, c_path: str) -> list[dict]:
        """Between Cython and the C compiler: rewrite ``c_path`` in place; return diagnostics (may be empty)."""
        return []

    def loaded(self, result) -> None:
        """The module is loaded (``result.module``), fresh or from the cache (``result.cache_hit``)."""


def register(plugin: BuildPlugin) -> BuildPlugin:
    """Add ``plugin`` to every later ``%%cython`` build (idempotent). Returns it."""
    with _lock:
        if plugin not in _plugins:
            _plugins.append(plugin)
    return plugin


def unregister(plugin: BuildPlugin) -> None:
    with _lock:
        if plugin in _plugins:
            _plugins.remove(plugin)


def registered() -> tuple[BuildPlugin, ...]:
    with _lock:
        return tuple(_plugins)
