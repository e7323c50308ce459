"""Each combination that changes the Python side (Python x Django x services) installs from its lock
into a fresh virtualenv, passes its own test suite and Django's deployment checks. A Python this machine
lacks (3.14 and 3.15 here) runs in the python:X-slim image instead (scripts/pythons.py); the checks are
the same."""

import itertools

import pytest

import pythons
from support import DJANGO_VERSIONS, PYTHON_VERSIONS, SERVICES, bake, clean_env, env_file, run, supported

# The lock differs between no store, a store, and a store + Celery, each with or without Sentry; Valkey and
# Redis alternate. Sign-in by username (its own model and migration) is checked on the variants without a
# store, by email on the others. Sentry alternates, so each kind of services is installed with and without it
# (test_every_shipped_lock_matches_its_pyproject checks every lock).
VARIANTS = [
    (python, django, services, "username" if services == "none" else "email", "ny"[index % 2])
    for index, (python, django, services) in enumerate(
        (python, django, services)
        for python, django, services in itertools.product(
            PYTHON_VERSIONS, DJANGO_VERSIONS, ["none", "valkey", "celery-redis"]
        )
        if supported(python, django)
    )
]
LOCKS = [
    (python, django, services, sentry)
    for python, django, services, sentry in itertools.product(
        PYTHON_VERSIONS, DJANGO_VERSIONS, ["none", "valkey", "celery-redis"], ["n", "y"]
    )
    if supported(python, django)
]


@pytest.mark.venv
@pytest.mark.parametrize(
    "python, django, services, login, sentry",
    VARIANTS,
    ids=["-".join(v[:4]) + ("-sentry" if v[4] == "y" else "") for v in VARIANTS],
)
def test_baked_project_installs_and_passes_its_checks(cookies, python, django, services, login, sentry):
    project = bake(
        cookies,
        python_version=python,
        django_version=django,
        username_type=login,
        use_sentry=sentry,
        **SERVICES[services],
    )
    env = clean_env()

    def uv(subcommand: str, *args: str, environment: dict[str, str] | None = None) -> str:
        extra = {k: v for k, v in (environment or {}).items() if k not in env or env[k] != v}
        command = pythons.uv(python, project, subcommand, *args, env=extra)
        return run(command, cwd=project, env=environment or env, timeout=900).stdout

    # --locked: the shipped uv.lock must match pyproject.toml exactly.
    uv("sync", "--locked")
    version = uv(
        "run", "--no-sync", "python", "-c", "import sys, django; print(sys.version_info[:2], django.get_version())"
    )
    assert version.startswith(f"({python.replace('.', ', ')})") and f" {django}." in version

    tests = uv("run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider")
    assert " passed" in tests and " failed" not in tests

    uv("run", "--no-sync", "python", "manage.py", "makemigrations", "--check", "--dry-run")

    # The deployment checks, with the generated production settings (DEBUG off, real secrets).
    deploy = uv(
        "run",
        "--no-sync",
        "python",
        "manage.py",
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        environment=clean_env(**env_file(project / ".envs/prod.env")),
    )
    assert "no issues" in deploy


@pytest.mark.parametrize(
    "python, django, services, sentry",
    LOCKS,
    ids=["-".join(v[:3]) + ("-sentry" if v[3] == "y" else "") for v in LOCKS],
)
def test_every_shipped_lock_matches_its_pyproject(cookies, python, django, services, sentry):
    """Every lock the template ships is the one `uv sync --locked` accepts for its answers, checked offline."""
    project = bake(cookies, python_version=python, django_version=django, use_sentry=sentry, **SERVICES[services])
    run(pythons.uv(python, project, "lock", "--check", "--offline"), cwd=project, env=clean_env(), timeout=300)
    assert ('name = "sentry-sdk"' in (project / "uv.lock").read_text()) == (sentry == "y")
