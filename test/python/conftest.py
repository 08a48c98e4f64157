"""Shared pytest set-up: import cyscope from the checkout, find the schema.

The same tests run under the project's venv (CPython 3.11.7, ipykernel 7)
and Debian's /usr/bin/python3 (3.11.2, ipykernel 6.17, Cython 0.29).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python-shim"))
# Crash reports of shells the tests load cyscope into go to a private temporary
# folder, not the user's Jupyter runtime folder.
os.environ.setdefault("CYSCOPE_CRASH_DIR", tempfile.mkdtemp(prefix="cyscope-test-crash-"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def protocol_schema() -> dict:
    """The comm protocol's schema as written: what readers accept."""
    return json.loads((REPO / "protocol" / "cyscope.schema.json").read_text())


def _validator(schema: dict):
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)

    def validate(message: dict) -> dict:
        validator.validate(message)
        return message

    return validate


@pytest.fixture(scope="session")
def validate_message(protocol_schema):
    """Validate a message the kernel sends (or builds): the schema's strict view, no unnamed fields."""
    from protocol_views import strict_view

    return _validator(strict_view(protocol_schema))


@pytest.fixture(scope="session")
def validate_reading(protocol_schema):
    """Validate a message as a reader takes it: the schema as written, unknown fields allowed."""
    return _validator(protocol_schema)


@pytest.fixture
def shell():
    """A real IPython InteractiveShell with cyscope loaded, unloaded after."""
    from IPython.testing.globalipapp import get_ipython, start_ipython

    ip = start_ipython() or get_ipython()  # None once already started
    ip.run_line_magic("load_ext", "cyscope")
    yield ip
    ip.run_line_magic("unload_ext", "cyscope")
