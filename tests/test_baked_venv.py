"""A covering set of the combinations that change the Python side (Python x Django x services x sign-in x API x
media storage x Sentry: every pair of their values in at least one) installs from its lock into a fresh virtualenv,
passes its own test suite (every test collected runs and passes, none skipped) and Django's deployment checks; with
Sentry, the settings start the SDK with the integrations the answers ask for. A Python this machine lacks (3.14 and
3.15 here) runs in uv's image with that Python instead (scripts/pythons.py); the checks are the same. The development
tools check each too: mypy (strict, with django-stubs) finds no issue, djLint accepts the templates, and the tests run
under coverage meet the project's threshold (fail_under)."""

import itertools
import re
import tomllib

import pytest

import pythons
from support import (
    DJANGO_VERSIONS,
    PYTHON_VERSIONS,
    SERVICES,
    USERNAME_TYPES,
    bake,
    clean_env,
    covering,
    env_file,
    run,
    supported,
    tool,
)

# The lock differs between no store, a store, and a store + Celery, each with or without Sentry (Valkey and Redis
# share it); sign-in by username has its own model and migration; each API and the S3 media their own packages.
VENV_OPTIONS = {
    "python": PYTHON_VERSIONS,
    "django": DJANGO_VERSIONS,
    "services": ["none", "valkey", "celery-redis"],
    "login": USERNAME_TYPES,
    "sentry": ["n", "y"],
    "api": ["none", "drf", "ninja"],
    "media": ["local", "s3"],
}
VARIANTS = covering(VENV_OPTIONS, [{"python": "3.15", "django": "5.2"}])
# Every lock the template ships: each check is an offline `uv lock --check`, cheap enough to keep them all.
LOCK_OPTIONS = {name: values for name, values in VENV_OPTIONS.items() if name != "login"}
LOCKS = [
    dict(zip(LOCK_OPTIONS, values, strict=True))
    for values in itertools.product(*LOCK_OPTIONS.values())
    if supported(values[0], values[1])
]
# With media_storage=s3 the live settings refuse to load without a bucket (the generated prod.env leaves it to the
# user): a stand-in one for the deployment checks, as the baked project's CI gives them.
BUCKET = {
    "MEDIA_S3_BUCKET": "ci",
    "MEDIA_S3_REGION": "us-east-1",
    "MEDIA_S3_ACCESS_KEY_ID": "ci",
    "MEDIA_S3_SECRET_ACCESS_KEY": "ci",
}


def live_settings(project, media: str) -> dict[str, str]:
    """The generated .envs/prod.env, with the stand-in bucket where the answers keep media in one."""
    return {**env_file(project / ".envs/prod.env"), **(BUCKET if media == "s3" else {})}


def row_id(row: dict[str, str]) -> str:
    """3.13-6.1-none-email-sentry-drf-s3: Python, Django, services, the sign-in, then what is not the default."""
    shown = [row["python"], row["django"], row["services"], row.get("login", "")]
    shown += ["sentry" if row["sentry"] == "y" else "", "" if row["api"] == "none" else row["api"]]
    return "-".join(part for part in [*shown, "" if row["media"] == "local" else row["media"]] if part)


@pytest.mark.venv
@pytest.mark.parametrize(
    "python, django, services, login, sentry, api, media",
    [tuple(row.values()) for row in VARIANTS],
    ids=[row_id(row) for row in VARIANTS],
)
def test_baked_project_installs_and_passes_its_checks(cookies, python, django, services, login, sentry, api, media):
    project = bake(
        cookies,
        python_version=python,
        django_version=django,
        username_type=login,
        use_sentry=sentry,
        api=api,
        media_storage=media,
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

    # Development tools: the strict type check of the whole project, as pre-commit and CI run it.
    checked = uv("run", "--no-sync", "mypy")
    assert "Success: no issues found" in checked, checked
    # djLint accepts the Django templates (pre-commit's lint).
    templates = [
        str(p.relative_to(project))
        for glob in ("templates/**/*.html", "*/templates/**/*.html")
        for p in project.glob(glob)
    ]
    assert templates, "no Django templates found"
    run([tool("djlint"), "--lint", *templates], cwd=project)

    # run() fails on a failing test; what must also fail is a test that did not run: every one collected passes.
    # Under coverage, as CI runs them.
    tests = uv("run", "--no-sync", "coverage", "run", "-m", "pytest", "-p", "no:cacheprovider", "-rs")
    collected = int(re.search(r"^collected (\d+) items?", tests, re.M).group(1))
    summary = re.findall(r"^=+ (.*) in [\d.]+s", tests, re.M)[-1]
    outcomes = dict((word, int(count)) for count, word in re.findall(r"(\d+) (\w+)", summary))
    assert collected > 0 and outcomes.pop("passed", 0) == collected, tests[-3000:]
    assert set(outcomes) <= {"warning", "warnings"}, f"not all passed: {summary}\n{tests[-3000:]}"
    # The coverage (the subprocesses' too) meets the threshold in pyproject.toml: `coverage report` fails below it.
    uv("run", "--no-sync", "coverage", "combine", "-q")
    threshold = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["coverage"]["report"]["fail_under"]
    report = uv("run", "--no-sync", "coverage", "report")
    total = re.search(r"^TOTAL\s.*\s(\d+)%$", report, re.M)
    assert threshold >= 90 and total and int(total.group(1)) >= threshold, report
    print(f"\n[venv] {python}-{django}-{services}-{login}: coverage {total.group(1)}%")

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
        environment=clean_env(**live_settings(project, media)),
    )
    assert "no issues" in deploy

    if sentry == "y":
        # The production settings with a DSN start the SDK, on Django, and on Celery where the project runs it.
        code = "import django, sentry_sdk; django.setup(); print(*sorted(sentry_sdk.get_client().integrations))"
        dsn = {"SENTRY_DSN": "https://public@sentry.example.com/1", "DJANGO_SETTINGS_MODULE": "config.settings"}
        prod = clean_env(**live_settings(project, media), **dsn)
        integrations = uv("run", "--no-sync", "python", "-c", code, environment=prod).split()
        assert "django" in integrations and ("celery" in integrations) == services.startswith("celery"), integrations


@pytest.mark.parametrize(
    "python, django, services, sentry, api, media", [tuple(row.values()) for row in LOCKS], ids=map(row_id, LOCKS)
)
def test_every_shipped_lock_matches_its_pyproject(cookies, python, django, services, sentry, api, media):
    """Every lock the template ships is the one `uv sync --locked` accepts for its answers, checked offline."""
    options = {"use_sentry": sentry, "api": api, "media_storage": media, **SERVICES[services]}
    project = bake(cookies, python_version=python, django_version=django, **options)
    run(pythons.uv(python, project, "lock", "--check", "--offline"), cwd=project, env=clean_env(), timeout=300)
    assert ('name = "sentry-sdk"' in (project / "uv.lock").read_text()) == (sentry == "y")
