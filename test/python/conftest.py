"""Shared pytest set-up: import cyscope from the checkout, find the schema.

The same tests run under the project's venv (CPython 3.11.7, ipykernel 7)
and Debian's /usr/bin/python3 (3.11.2, ipykernel 6.17, Cython 0.29).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python-shim"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def protocol_schema() -> dict:
    return json.loads((REPO / "protocol" / "cyscope.schema.json").read_text())


@pytest.fixture(scope="session")
def validate_message(protocol_schema):
    """Validate a message against the shared protocol schema (raises on error)."""
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(protocol_schema)
    validator = validator_cls(protocol_schema)

    def validate(message: dict) -> dict:
        validator.validate(message)
        return message

    return validate


@pytest.fixture
def shell():
    """A real IPython InteractiveShell with cyscope loaded, unloaded after."""
    from IPython.testing.globalipapp import get_ipython, start_ipython

    ip = start_ipython() or get_ipython()  # None once already started
    ip.run_line_magic("load_ext", "cyscope")
    yield ip
    ip.run_line_magic("unload_ext", "cyscope")
