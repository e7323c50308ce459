"""The settings module read in a fresh interpreter with a given environment, as a server would."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "a-long-random-production-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    "ALLOWED_HOSTS": "{{ cookiecutter.__domain_name }}",
{%- if cookiecutter.key_value_store != "none" %}
    "REDIS_URL": "redis://redis:6379/0",
{%- endif %}
{%- if cookiecutter.media_storage == "s3" %}
    # Media in object storage: the bucket's settings (nothing here connects to it).
    "MEDIA_S3_BUCKET": "media",
    "MEDIA_S3_REGION": "us-east-1",
    "MEDIA_S3_ACCESS_KEY_ID": "test-key-id",
    "MEDIA_S3_SECRET_ACCESS_KEY": "test-secret",
{%- endif %}
}
# Variables a developer's shell or container may have set: each test starts without them.
NAMES = [
    *PRODUCTION,
    "DATABASE_URL",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "LOG_LEVEL",
    "LOGIN_FAILURE_LIMIT",
    "LOGIN_COOLOFF_SECONDS",
    "PASSWORD_RESET_LIMIT_PER_CLIENT",
    "PASSWORD_RESET_LIMIT_PER_ADDRESS",
    "PASSWORD_RESET_WINDOW_SECONDS",
    "SIGNUP_LIMIT_PER_CLIENT",
    "SIGNUP_WINDOW_SECONDS",
    "CLIENT_IP_HEADER",
{%- if cookiecutter.media_storage == "s3" %}
    "MEDIA_S3_ENDPOINT_URL",
    "MEDIA_S3_URL_EXPIRES",
    "MEDIA_S3_ADDRESSING_STYLE",
{%- endif %}
{%- if cookiecutter.use_celery == "y" %}
    "CLEAR_SESSIONS_SCHEDULE",
{%- endif %}
{%- if cookiecutter.use_sentry == "y" %}
    "SENTRY_DSN",
    "SENTRY_ENVIRONMENT",
    "APP_VERSION",
{%- endif %}
]


def run_python(code: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter, in the project, with exactly these variables and config.settings."""
    env = {key: value for key, value in os.environ.items() if key not in NAMES}
    env.update(environ, DJANGO_SETTINGS_MODULE="config.settings")
    return subprocess.run([sys.executable, "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True)


def load_settings(**environ: str) -> subprocess.CompletedProcess[str]:
    """Import config.settings with exactly these variables; print a few values as JSON."""
    code = (
        "import json; from django.conf import settings as s; "
        "print(json.dumps({'DEBUG': s.DEBUG, 'ALLOWED_HOSTS': s.ALLOWED_HOSTS, "
        "'DATABASE': s.DATABASES['default'], 'SSL_REDIRECT': s.SECURE_SSL_REDIRECT, "
        "'CACHE': s.CACHES['default']['BACKEND'], "
        "'HSTS': [s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD]}, default=str))"
    )
    return run_python(code, **environ)


def values(**environ: str) -> dict[str, Any]:
    result = load_settings(**environ)
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


@pytest.mark.parametrize("text", ["0", "false", "False", "no", "off"])
def test_debug_false_values_turn_debug_off(text: str) -> None:
    assert values(**{**PRODUCTION, "DEBUG": text})["DEBUG"] is False


@pytest.mark.parametrize("text", ["1", "true", "YES", "on"])
def test_debug_true_values_turn_debug_on(text: str) -> None:
    assert values(DEBUG=text)["DEBUG"] is True


def test_a_misspelt_boolean_is_an_error_not_true() -> None:
    result = load_settings(**{**PRODUCTION, "DEBUG": "flase"})
    assert result.returncode != 0
    assert "DEBUG='flase' is not a boolean" in result.stderr


def test_debug_defaults_to_off() -> None:
    assert values(**{k: v for k, v in PRODUCTION.items() if k != "DEBUG"})["DEBUG"] is False


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS"{% if cookiecutter.key_value_store != "none" %}, "REDIS_URL"{% endif %}])
def test_production_refuses_to_start_without(missing: str) -> None:
    result = load_settings(**{k: v for k, v in PRODUCTION.items() if k != missing})
    assert result.returncode != 0
    assert f"{missing} is not set, and DEBUG is off" in result.stderr


def test_without_database_url_sqlite_is_used() -> None:
    database = values(DEBUG="1")["DATABASE"]
    assert database["ENGINE"] == "django.db.backends.sqlite3"


def test_database_url_configures_postgres_with_health_checked_persistent_connections() -> None:
    database = values(**PRODUCTION, DATABASE_URL="postgres://user:secret@db:5432/name")["DATABASE"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["HOST"], database["PORT"], database["NAME"]) == ("db", 5432, "name")
    assert database["CONN_HEALTH_CHECKS"] is True
    assert database["CONN_MAX_AGE"] > 0


def test_allowed_hosts_is_a_comma_separated_list() -> None:
    hosts = values(**{**PRODUCTION, "ALLOWED_HOSTS": "a.example, b.example"})["ALLOWED_HOSTS"]
    assert hosts == ["a.example", "b.example"]


def test_https_redirect_is_on_in_production_and_can_be_turned_off() -> None:
    assert values(**PRODUCTION)["SSL_REDIRECT"] is True
    assert values(**PRODUCTION, SECURE_SSL_REDIRECT="0")["SSL_REDIRECT"] is False


def test_hsts_subdomains_and_preload_are_opt_in() -> None:
    assert values(**PRODUCTION)["HSTS"][1:] == [False, False]
    opted_in = values(**PRODUCTION, SECURE_HSTS_INCLUDE_SUBDOMAINS="1", SECURE_HSTS_PRELOAD="1")
    assert opted_in["HSTS"][1:] == [True, True]


def test_deploy_checks_pass_without_hsts_subdomains_and_preload(tmp_path: Path) -> None:
    """Off by choice, so `check --deploy` does not warn about them; opted in, nothing to silence."""
    env = {key: value for key, value in os.environ.items() if key not in NAMES}
    # A database the checks can open: allauth's JSON fields make Django's model checks ask SQLite what it supports,
    # and the checkout is not writable in the development container.
    env.update(PRODUCTION, DJANGO_SETTINGS_MODULE="config.settings", DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3")
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    for opt_in in ("0", "1"):
        env.update(SECURE_HSTS_INCLUDE_SUBDOMAINS=opt_in, SECURE_HSTS_PRELOAD=opt_in)
        result = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def log_in_development(logger: str, message: str) -> subprocess.CompletedProcess[str]:
    """Log a warning through the development settings' logging, in a fresh interpreter."""
    code = f"import django, logging; django.setup(); logging.getLogger({logger!r}).warning({message!r})"
    result = run_python(code, DEBUG="1")
    assert result.returncode == 0, result.stderr
    return result


def test_a_django_log_line_is_printed_once_in_development() -> None:
    result = log_in_development("django.request", "only once")
    assert (result.stdout + result.stderr).count("only once") == 1, result.stdout + result.stderr


def test_logs_go_to_stdout() -> None:
    result = log_in_development("probe", "to stdout")
    assert "WARNING probe to stdout" in result.stdout
    assert "to stdout" not in result.stderr


def limits(**environ: str) -> subprocess.CompletedProcess[str]:
    code = (
        "from django.conf import settings as s; print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME.total_seconds(), "
        "s.PASSWORD_RESET_LIMIT_PER_CLIENT, s.PASSWORD_RESET_LIMIT_PER_ADDRESS, s.PASSWORD_RESET_WINDOW, "
        "s.ACCOUNT_RATE_LIMITS['signup'])"
    )
    return run_python(code, **PRODUCTION, **environ)


def test_the_sign_in_limits_have_defaults_and_come_from_the_environment() -> None:
    assert limits().stdout.split() == ["5", "900.0", "5", "3", "3600", "10/3600s/ip"]
    configured = limits(
        LOGIN_FAILURE_LIMIT="10",
        LOGIN_COOLOFF_SECONDS="60",
        PASSWORD_RESET_LIMIT_PER_CLIENT="20",
        PASSWORD_RESET_LIMIT_PER_ADDRESS="4",
        PASSWORD_RESET_WINDOW_SECONDS="600",
        SIGNUP_LIMIT_PER_CLIENT="3",
        SIGNUP_WINDOW_SECONDS="86400",
    )
    assert configured.stdout.split() == ["10", "60.0", "20", "4", "600", "3/86400s/ip"]


@pytest.mark.parametrize(
    "name, value", [("LOGIN_FAILURE_LIMIT", "0"), ("LOGIN_COOLOFF_SECONDS", "soon"), ("SIGNUP_LIMIT_PER_CLIENT", "0")]
)
def test_a_sign_in_limit_that_cannot_work_is_refused(name: str, value: str) -> None:
    result = limits(**{name: value})
    assert result.returncode != 0 and f"{name}=" in result.stderr
{%- if cookiecutter.key_value_store == "none" %}


def test_without_a_store_the_cache_is_a_database_table_every_worker_shares() -> None:
    assert values(**PRODUCTION)["CACHE"] == "django.core.cache.backends.db.DatabaseCache"
{%- else %}


def test_redis_url_makes_redis_the_cache() -> None:
    assert values(**PRODUCTION)["CACHE"] == "django.core.cache.backends.redis.RedisCache"
    assert values(DEBUG="1")["CACHE"] == "django.core.cache.backends.locmem.LocMemCache"
{%- endif %}

{%- if cookiecutter.use_celery == "y" %}


def beat_schedule(**environ: str) -> dict[str, Any]:
    """The beat schedule's entries: task name and schedule (repr) each."""
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({name: [entry['task'], "
        "repr(entry['schedule'])] for name, entry in s.CELERY_BEAT_SCHEDULE.items()}))"
    )
    result = run_python(code, DEBUG="1", **environ)
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def test_beat_clears_expired_sessions_daily_at_three_utc_by_default() -> None:
    task, schedule = beat_schedule()["clear-expired-sessions"]
    assert task == "{{ cookiecutter.project_slug }}.tasks.clear_expired_sessions"
    assert schedule == "<crontab: 0 3 * * * (m/h/dM/MY/d)>"


@pytest.mark.parametrize(
    "value, schedule",
    [("*/5 * * * 1-5", "<crontab: */5 * * * 1-5 (m/h/dM/MY/d)>"), ("2", "2"), (" 60 ", "60")],
)
def test_the_schedule_comes_from_clear_sessions_schedule(value: str, schedule: str) -> None:
    assert beat_schedule(CLEAR_SESSIONS_SCHEDULE=value)["clear-expired-sessions"][1] == schedule


@pytest.mark.parametrize("value", ["daily", "0 3 * *", "61 3 * * *", "0"])
def test_a_bad_schedule_is_an_error_that_says_what_to_write(value: str) -> None:
    result = run_python("import django; django.setup()", DEBUG="1", CLEAR_SESSIONS_SCHEDULE=value)
    assert result.returncode != 0
    assert f"CLEAR_SESSIONS_SCHEDULE={value!r} is neither a cron expression" in result.stderr, result.stderr
{%- endif %}
{%- if cookiecutter.use_sentry == "y" %}


def sentry_client(**environ: str) -> dict[str, Any]:
    """Whether the settings started the Sentry SDK, and with which options."""
    code = (
        "import json, django, sentry_sdk; django.setup(); c = sentry_sdk.get_client(); print(json.dumps("
        "{'active': c.is_active(), 'release': c.options['release'], 'environment': c.options['environment'], "
        "'dsn': c.options['dsn'], 'pii': [c.options[o] for o in "
        "('send_default_pii', 'max_request_body_size', 'include_local_variables')]}))"
    )
    result = run_python(code, **environ)
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def test_without_a_dsn_the_sentry_sdk_is_not_started() -> None:
    assert sentry_client(**PRODUCTION)["active"] is False
    assert sentry_client(**PRODUCTION, SENTRY_DSN="  ")["active"] is False


def test_a_dsn_starts_sentry_without_personal_data_and_with_the_release() -> None:
    dsn = "https://public@sentry.example.com/1"
    client = sentry_client(**PRODUCTION, SENTRY_DSN=dsn, APP_VERSION="1.4.2")
    expected = {"active": True, "pii": [False, "never", False], "release": "1.4.2", "environment": "production"}
    assert client == {**expected, "dsn": dsn}
    staging = sentry_client(**PRODUCTION, SENTRY_DSN=dsn, APP_VERSION="1.4.2", SENTRY_ENVIRONMENT="staging")
    assert staging["environment"] == "staging"
    assert sentry_client(DEBUG="1", SENTRY_DSN=dsn)["environment"] == "development"
{%- endif %}
