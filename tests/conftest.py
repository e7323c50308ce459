"""Shared helpers for the template's tests: baking, the option matrix, and the tools they run."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

TEMPLATE = Path(__file__).resolve().parent.parent
# The tests `import pythons` (scripts/pythons.py): uv under a baked project's Python, on the host or in Docker.
sys.path.insert(0, str(TEMPLATE / "scripts"))
# pytest-cookies renders cookiecutter.json before cookiecutter puts the template on the path for its extension
# (check_answers.py); cookiecutter and cruft do that themselves.
sys.path.append(str(TEMPLATE))
BIN = Path(sys.executable).parent  # the template's virtualenv: cookiecutter, ruff, hadolint, uv...

# Every answer that changes the baked files, with its values.
PYTHON_VERSIONS = ["3.14", "3.13", "3.12", "3.15"]
DJANGO_VERSIONS = ["5.2", "6.1"]
POSTGRES_VERSIONS = ["18", "17", "16", "15"]
SERVICES = {
    "none": {"key_value_store": "none", "use_celery": "n"},
    "valkey": {"key_value_store": "valkey", "use_celery": "n"},
    "redis": {"key_value_store": "redis", "use_celery": "n"},
    "celery-valkey": {"key_value_store": "valkey", "use_celery": "y"},
    "celery-redis": {"key_value_store": "redis", "use_celery": "y"},
}
CIS = ["github", "gitlab", "none"]
LICENSES = ["MIT", "BSD-3-Clause", "Apache-2.0", "GPL-3.0-or-later", "Not open source"]
USERNAME_TYPES = ["email", "username"]


def supported(python: str, django: str) -> bool:
    """Django 5.2 does not support Python 3.15; the pre-gen hook refuses the pair."""
    return not (python == "3.15" and django == "5.2")


def combinations() -> list[dict[str, str]]:
    """Every combination of Python, Django, PostgreSQL and services that can be baked (7 x 4 x 5 = 140), with
    the CI and the license rotating through their values so that every (CI, license) and every (CI,
    services) pair appears: those two answers only add or remove whole files."""
    versions = [
        (py, dj, pg, svc)
        for py, dj, pg, svc in itertools.product(PYTHON_VERSIONS, DJANGO_VERSIONS, POSTGRES_VERSIONS, SERVICES)
        if supported(py, dj)
    ]
    return [
        {
            "python_version": py,
            "django_version": dj,
            "postgres_version": pg,
            **SERVICES[svc],
            "ci": CIS[index % len(CIS)],
            "open_source_license": LICENSES[index % len(LICENSES)],
            # Changes the users app's model, admin, migration and tests only: alternating covers both.
            "username_type": USERNAME_TYPES[index % len(USERNAME_TYPES)],
        }
        for index, (py, dj, pg, svc) in enumerate(versions)
    ]


def services_id(context: dict[str, str]) -> str:
    return next(name for name, answers in SERVICES.items() if all(context[k] == v for k, v in answers.items()))


def combination_id(context: dict[str, str]) -> str:
    return "-".join(
        [
            f"py{context['python_version']}",
            f"dj{context['django_version']}",
            f"pg{context['postgres_version']}",
            services_id(context),
            context["ci"],
            context["open_source_license"].replace(" ", ""),
            context["username_type"],
        ]
    )


def tool(name: str) -> str:
    """A command from the template's virtualenv, else from PATH; a missing tool fails the test."""
    candidate = BIN / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run `uv sync` in the template (it installs the pinned tools)")
    return found


def run(
    command: list[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    check: bool = True,
) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}"
            f"\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


class ComposeLoader(yaml.SafeLoader):
    """Safe YAML plus Compose's merge tags (!override, !reset), read as the plain value they tag."""


def _compose_tag(loader: ComposeLoader, node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


for _tag in ("!override", "!reset"):
    ComposeLoader.add_constructor(_tag, _compose_tag)


def load_yaml(text: str):
    return yaml.load(text, Loader=ComposeLoader)


def bake(cookies, **context: str) -> Path:
    """Bake with these answers and return the project's path; fail with cookiecutter's reason if it fails."""
    result = cookies.bake(extra_context=context)
    assert result.exception is None, f"bake failed: {result.exception}"
    assert result.exit_code == 0
    return Path(result.project_path)


def postgres_major(project: Path) -> str:
    """The PostgreSQL major a baked project's live stack runs (compose.prod.yaml's database image): the tag of
    the backup image make build-live builds (<slug>-backup:pg<major>)."""
    return re.search(r"(?m)^    image: postgres:(\d+)$", (project / "compose.prod.yaml").read_text()).group(1)


# Let's Encrypt's ACME test server, which the edge tests get their certificates from.
PEBBLE_IMAGE = "ghcr.io/letsencrypt/pebble"


def write_pebble_api_root(project: Path) -> None:
    """pebble-api-root.pem in the project: the root that signs pebble's own API (compose.pebble.yaml's CA)."""
    api_root = run(["docker", "run", "--rm", "--entrypoint", "cat", PEBBLE_IMAGE, "/test/certs/pebble.minica.pem"])
    (project / "pebble-api-root.pem").write_text(api_root.stdout)


def pebble_issuing_root(project: Path, pebble_port: int) -> ssl.SSLContext:
    """Trust in the root pebble issues the edge's certificate under, and nothing else."""
    api = ssl.create_default_context(cafile=str(project / "pebble-api-root.pem"))
    root = httpx.get(f"https://127.0.0.1:{pebble_port}/roots/0", verify=api, timeout=30)
    assert root.status_code == 200 and "BEGIN CERTIFICATE" in root.text
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=root.text)
    return context


def stack_name(name: str) -> str:
    """The project name for an end-to-end bake: with E2E_NAME_SUFFIX (e.g. a branch name) appended, a second run
    on the same engine gets stacks, volumes and images of its own."""
    suffix = os.environ.get("E2E_NAME_SUFFIX")
    return f"{name} {suffix}" if suffix else name


def clean_env(**extra: str) -> dict[str, str]:
    """The environment a baked project's commands run with: none of this run's Django variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DJANGO_SETTINGS_MODULE",
            "DATABASE_URL",
            "REDIS_URL",
            "DEBUG",
            "SECRET_KEY",
            "VIRTUAL_ENV",
            "UV_PROJECT_ENVIRONMENT",
        )
    }
    env.update(extra)
    return env


def require(condition: bool, reason: str) -> None:
    """Skip when something optional is missing on a developer's machine; in CI, fail instead."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: a missing prerequisite is a failure, not a skip)")
    pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    # pytest-cookies bakes from --template, "." by default: make it this template wherever pytest runs.
    config.option.template = str(TEMPLATE)
