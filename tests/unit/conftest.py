"""Fixtures for the unit tests; the builders themselves live in builders.py (importable by name,
unlike a conftest, which pytest may load under the same module name from several folders)."""

from __future__ import annotations

import pytest
from tests.unit.builders import make_spec

from rwscaler.core.spec import ReadWriteWorkloadSpec


@pytest.fixture
def spec() -> ReadWriteWorkloadSpec:
    return make_spec()
