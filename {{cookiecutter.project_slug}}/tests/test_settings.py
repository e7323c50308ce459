"""The settings module read in a fresh interpreter with a given environment, as a server would."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "a-long-random-production-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    "ALLOWED_HOSTS": "{{ cookiecutter.__domain_name }}",
{%- if cookiecutter.key_value_store != "none" %}
    "REDIS_URL": "redis://redis:6379/0",
{%- endif %}
}
# Variables a developer's shell or container may have set: each test starts without them.
NAMES = [*PRODUCTION, "DATABASE_URL", "SECURE_SSL_REDIRECT"]


def load_settings(**environ: str) -> subprocess.CompletedProcess:
    """Import config.settings with exactly these variables; print a few values as JSON."""
    env = {key: value for key, value in os.environ.items() if key not in NAMES}
    env.update(environ, DJANGO_SETTINGS_MODULE="config.settings")
    code = (
        "import json; from django.conf import settings as s; "
        "print(json.dumps({'DEBUG': s.DEBUG, 'ALLOWED_HOSTS': s.ALLOWED_HOSTS, "
        "'DATABASE': s.DATABASES['default'], 'SSL_REDIRECT': s.SECURE_SSL_REDIRECT, "
        "'CACHE': s.CACHES['default']['BACKEND']}, default=str))"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True)


def values(**environ: str) -> dict:
    result = load_settings(**environ)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("text", ["0", "false", "False", "no", "off"])
def test_debug_false_values_turn_debug_off(text):
    assert values(**{**PRODUCTION, "DEBUG": text})["DEBUG"] is False


@pytest.mark.parametrize("text", ["1", "true", "YES", "on"])
def test_debug_true_values_turn_debug_on(text):
    assert values(DEBUG=text)["DEBUG"] is True


def test_a_misspelt_boolean_is_an_error_not_true():
    result = load_settings(**{**PRODUCTION, "DEBUG": "flase"})
    assert result.returncode != 0
    assert "DEBUG='flase' is not a boolean" in result.stderr


def test_debug_defaults_to_off():
    assert values(**{k: v for k, v in PRODUCTION.items() if k != "DEBUG"})["DEBUG"] is False


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS"{% if cookiecutter.key_value_store != "none" %}, "REDIS_URL"{% endif %}])
def test_production_refuses_to_start_without(missing):
    result = load_settings(**{k: v for k, v in PRODUCTION.items() if k != missing})
    assert result.returncode != 0
    assert f"{missing} is not set, and DEBUG is off" in result.stderr


def test_without_database_url_sqlite_is_used():
    database = values(DEBUG="1")["DATABASE"]
    assert database["ENGINE"] == "django.db.backends.sqlite3"


def test_database_url_configures_postgres_with_health_checked_persistent_connections():
    database = values(**PRODUCTION, DATABASE_URL="postgres://user:secret@db:5432/name")["DATABASE"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["HOST"], database["PORT"], database["NAME"]) == ("db", 5432, "name")
    assert database["CONN_HEALTH_CHECKS"] is True
    assert database["CONN_MAX_AGE"] > 0


def test_allowed_hosts_is_a_comma_separated_list():
    hosts = values(**{**PRODUCTION, "ALLOWED_HOSTS": "a.example, b.example"})["ALLOWED_HOSTS"]
    assert hosts == ["a.example", "b.example"]


def test_https_redirect_is_on_in_production_and_can_be_turned_off():
    assert values(**PRODUCTION)["SSL_REDIRECT"] is True
    assert values(**PRODUCTION, SECURE_SSL_REDIRECT="0")["SSL_REDIRECT"] is False


def test_logs_go_to_stdout():
    env = {key: value for key, value in os.environ.items() if key not in NAMES}
    env.update(DEBUG="1", DJANGO_SETTINGS_MODULE="config.settings")
    code = "import django, logging; django.setup(); logging.getLogger('probe').warning('to stdout')"
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "WARNING probe to stdout" in result.stdout
    assert "to stdout" not in result.stderr
{%- if cookiecutter.key_value_store != "none" %}


def test_redis_url_makes_redis_the_cache():
    assert values(**PRODUCTION)["CACHE"] == "django.core.cache.backends.redis.RedisCache"
    assert values(DEBUG="1")["CACHE"] == "django.core.cache.backends.locmem.LocMemCache"
{%- endif %}
