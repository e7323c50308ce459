"""Fixtures and pytest hooks shared by the template's tests (the helpers are in support.py)."""

from __future__ import annotations

import pytest

from support import TEMPLATE


def pytest_configure(config: pytest.Config) -> None:
    # pytest-cookies bakes from --template, "." by default: make it this template wherever pytest runs.
    config.option.template = str(TEMPLATE)
