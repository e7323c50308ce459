"""Each combination that changes the Python side (Python x Django x services) installs from its lock
into a fresh virtualenv, passes its own test suite and Django's deployment checks."""

import itertools
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import DJANGO_VERSIONS, PYTHON_VERSIONS, SERVICES, bake, clean_env, python_interpreter, run, tool

VARIANTS = list(itertools.product(PYTHON_VERSIONS, DJANGO_VERSIONS, SERVICES))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_page(url: str, server: subprocess.Popen, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"runserver exited {server.returncode}: {server.stdout.read()}")
        try:
            return urllib.request.urlopen(url, timeout=5)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)
    pytest.fail(f"runserver did not answer {url} within {timeout}s")


def env_file(path):
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return dict(pairs)


@pytest.mark.venv
@pytest.mark.parametrize("python, django, services", VARIANTS, ids=["-".join(v) for v in VARIANTS])
def test_baked_project_installs_and_passes_its_checks(cookies, python, django, services):
    project = bake(cookies, python_version=python, django_version=django, **SERVICES[services])
    uv = tool("uv")
    env = clean_env()
    # --locked: the shipped uv.lock must match pyproject.toml exactly.
    run([uv, "sync", "--locked", "--python", python_interpreter(python)], cwd=project, env=env)
    version = run(
        [
            uv,
            "run",
            "--no-sync",
            "python",
            "-c",
            "import sys, django; print(sys.version_info[:2], django.get_version())",
        ],
        cwd=project,
        env=env,
    ).stdout
    assert version.startswith(f"({python.replace('.', ', ')})") and f" {django}." in version

    tests = run([uv, "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project, env=env)
    assert " passed" in tests.stdout and " failed" not in tests.stdout

    run([uv, "run", "--no-sync", "python", "manage.py", "makemigrations", "--check", "--dry-run"], cwd=project, env=env)

    # The deployment checks, with the generated production settings (DEBUG off, real secrets).
    production = clean_env(**env_file(project / ".envs/prod.env"))
    deploy = run(
        [uv, "run", "--no-sync", "python", "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=project,
        env=production,
    )
    assert "no issues" in deploy.stdout
