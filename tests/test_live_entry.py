"""Issue 27: ./live, the one entry point for the live stack's operations. Its help lists every task, and every
task refuses bad arguments with a message that says what to type, a non-zero exit, and nothing started: no stack
is needed (no Docker command runs before the arguments are checked; a stub `docker` on PATH would say so)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

import pytest

from support import bake, clean_env, run

TASKS = ["help", "status", "stop", "deploy", "release", "rollback", "backup", "backups", "restore", "pg-upgrade"]
# Issue 26: the Docker Swarm tasks, one block at the end of ./live (tests/test_swarm.py checks their refusals).
SWARM_TASKS = ["swarm-deploy", "swarm-release", "swarm-rollback", "swarm-status"]
# A docker that fails loudly: any call to it before the arguments are checked shows in the output.
DOCKER = '#!/bin/sh\necho "docker stub: called with $*" >&2\nexit 99\n'


@pytest.fixture
def project(cookies, tmp_path):
    path = bake(cookies, project_name="Ops Entry", use_celery="y")
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "docker").write_text(DOCKER)
    (stub / "docker").chmod(0o755)
    return Entry(path, clean_env(PATH=f"{stub}:{os.environ['PATH']}"))


class Entry(NamedTuple):
    path: Path
    env: dict[str, str]


def live(project: Entry, *args: str, make: bool = False):
    command = ["make", *args] if make else ["./live", *args]
    result = run(command, cwd=project.path, env=project.env, check=False)
    result.output = result.stdout + result.stderr
    return result


def test_help_lists_every_task_and_an_unknown_task_is_refused(project):
    listed = live(project, "help")
    assert listed.returncode == 0, listed.output
    assert re.findall(r"^  ([a-z-]+) +\S", listed.stdout, re.M) == TASKS + SWARM_TASKS
    assert live(project).stdout == listed.stdout, "./live alone is its help"
    for task in ("nope", "_release", "_fail", "cd", "ls", "../x"):
        refused = live(project, task)
        assert refused.returncode == 2 and f"live: no task '{task}'. ./live help lists them:" in refused.stderr
        assert "docker stub" not in refused.output and "  deploy " in refused.stderr


REFUSALS = [
    (("status", "now"), "live: status takes no arguments, not 'now'."),
    (("stop", "-v"), "live: stop takes no arguments, not '-v'."),
    (("rollback", "TAG=v1"), "release: rollback takes no arguments, not 'TAG=v1'."),
    (("backup", "NAME=x"), "live: backup takes no arguments, not 'NAME=x'."),
    (("backups", "offsite"), "live: backups takes no arguments, not 'offsite'."),
    (("deploy", "1.0"), "deploy: deploy takes KEY=value arguments (TAG=), not '1.0'."),
    (("deploy", "NAME=x"), "deploy: deploy takes no NAME= (only TAG=)."),
    (("release", "v2"), "release: release takes KEY=value arguments (TAG=), not 'v2'."),
    (("release",), "release: which tag? Usage: make release TAG=<tag>"),
    (("restore", "latest"), "live: restore takes KEY=value arguments (NAME=, CONFIRM=, FROM=), not 'latest'."),
    (("restore", "TO=18"), "live: restore takes no TO= (only NAME=, CONFIRM=, FROM=)."),
    (("restore",), "Nothing was changed. To go ahead: make restore NAME=latest CONFIRM=yes"),
    (("restore", "NAME=x;touch pwned", "CONFIRM=yes"), "make restore: NAME=x;touch pwned is not a backup's name"),
    (("restore", "NAME=../../etc/passwd", "CONFIRM=yes"), "NAME=../../etc/passwd is not a backup's name"),
    (("pg-upgrade", "18"), "pg-upgrade: pg-upgrade takes KEY=value arguments (TO=, CONFIRM=), not '18'."),
    (("pg-upgrade", "TO=x", "CONFIRM=yes"), "pg-upgrade: usage: make pg-upgrade TO=<major> CONFIRM=yes"),
    (("pg-upgrade", "TO=17", "CONFIRM=yes"), "the live stack runs PostgreSQL 18: TO must be a later major"),
    (("pg-upgrade", "TO=19"), "Nothing was changed. To go ahead: make pg-upgrade TO=19 CONFIRM=yes"),
]


def test_each_task_refuses_bad_arguments_before_anything_runs(project):
    for args, message in REFUSALS:
        refused = live(project, *args)
        assert refused.returncode != 0 and message in refused.output, (args, refused.output)
        assert "othing was changed" in refused.output and "docker stub" not in refused.output, (args, refused.output)


def test_make_passes_only_its_command_line_and_a_bad_switch_is_refused(project):
    """The Makefile's aliases: NAME and CONFIRM left in the environment count for nothing; BEHIND_PROXY is
    checked by ./live before any docker command."""
    left = run(["make", "restore"], cwd=project.path, env={**project.env, "NAME": "x;y", "CONFIRM": "yes"}, check=False)
    assert left.returncode != 0 and "To go ahead: make restore NAME=latest CONFIRM=yes" in left.stdout
    given = live(project, "restore", "NAME=x;y", make=True)
    assert given.returncode != 0 and "NAME=x;y is not a backup's name" in given.output
    for task in TASKS[1:]:
        switched = run(["./live", task], cwd=project.path, env={**project.env, "BEHIND_PROXY": "yes"}, check=False)
        assert switched.returncode == 2, (task, switched.stdout + switched.stderr)
        assert "BEHIND_PROXY=yes: use 1 (behind your own TLS proxy) or 0 (the edge; the default)" in switched.stderr
        assert "docker stub" not in switched.stderr


def test_the_live_operations_files_stay_within_100_columns(project):
    """The live stack's files read like the rest (.editorconfig's 100 columns), as baked: before issue 27's last
    part, backup.sh had 34 lines over and compose.prod.yaml 6 (in the template)."""
    names = "live compose.prod.yaml compose.swarm.yaml backup.sh offsite.sh backup-common.sh postgres.env"
    for name in names.split():
        lines = (project.path / name).read_text().splitlines()
        assert not [n for n, line in enumerate(lines, 1) if len(line) > 100], name
