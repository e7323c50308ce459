"""Fixtures and pytest hooks shared by the template's tests (the helpers are in support.py).

Scheduling (pyproject's addopts: `--dist loadgroup --no-loadscope-reorder`): each end-to-end stack is one
xdist group, so its tests run in order on one worker that bakes, builds and starts it once; every other test is
handed out one by one. The groups are started first, longest first, and the quick tests fill the gaps."""

from __future__ import annotations

import os

import pytest

from support import TEMPLATE

# The end-to-end groups, longest first (minutes in a 4-worker run here: full 7, restore 6, release 5, lean 4...).
LONGEST_FIRST = [
    "full",
    "restore",
    "release",
    "lean",
    "new-app",
    "live-commands",
    "containment",
    "redis",
    "edge",
    "limits",
    "backup-schedule",
    "dev-redis",
]


def pytest_configure(config: pytest.Config) -> None:
    # pytest-cookies bakes from --template, "." by default: make it this template wherever pytest runs.
    config.option.template = str(TEMPLATE)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: three workers per core, at most 8. The end-to-end tests mostly wait (for a stack to become
    healthy, a schedule to fire, a certificate), so one worker per core leaves the cores idle. The
    PYTEST_XDIST_AUTO_NUM_WORKERS variable overrides it, as in xdist itself."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    return min(8, 3 * (os.cpu_count() or 1))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end groups first, longest first (xdist hands out work in collection order); then every test
    that builds or runs containers; then the rest. A stable sort: the order within a group is the file's."""

    def rank(item: pytest.Item) -> tuple[int, int]:
        group = item.get_closest_marker("xdist_group")
        if group:
            name = group.args[0] if group.args else group.kwargs.get("name")
            return (0, LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST))
        if item.get_closest_marker("e2e") or item.get_closest_marker("venv"):
            return (1, 0)
        return (2, 0)

    items.sort(key=rank)
