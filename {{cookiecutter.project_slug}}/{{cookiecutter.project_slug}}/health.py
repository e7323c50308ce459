"""Probes for Docker, Compose and load balancers.

GET /healthz  liveness: the process answers; no I/O, so a slow database never restarts the app.
GET /readyz   readiness: the services the app needs answer; 503 names the ones that do not.
(Either with a trailing slash too.)
Every response also carries X-App-Version: the image tag this process runs (APP_VERSION, set by
compose.prod.yaml from TAG), so a release can be watched moving from one version to the next.

Answered by a middleware placed first, before host validation and the HTTPS redirect, so a
probe needs neither the public host name nor TLS. /readyz reuses the connections the app holds
and gives up quickly, but it still touches the database: keep it off the public internet.
"""

import logging
import os
from collections.abc import Callable
{%- if cookiecutter.key_value_store != "none" %}
from functools import cache
{%- endif %}

{% if cookiecutter.key_value_store != "none" -%}
import redis
from django.conf import settings
{% endif -%}
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def check_database() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
{% if cookiecutter.key_value_store != "none" %}

@cache
def store_client(url: str) -> redis.Redis:
    """One client per process: its pool keeps the connection open from one probe to the next."""
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


def check_store() -> str | None:
    if not settings.REDIS_URL:
        return "not configured"  # local work without {{ cookiecutter.key_value_store | capitalize }}: the cache is in memory
    store_client(settings.REDIS_URL).ping()
    return None
{% endif %}

CHECKS: dict[str, Callable[[], str | None]] = {
    "database": check_database,
{%- if cookiecutter.key_value_store != "none" %}
    "{{ cookiecutter.key_value_store }}": check_store,
{%- endif %}
}


def readyz(request: HttpRequest) -> JsonResponse:
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            results[name] = check() or "ok"
        except Exception as exc:  # any failure means "not ready"; the reason goes to the log
            logger.warning("readiness check %s failed: %s", name, exc)
            results[name] = "unavailable"
    if results.get("database") != "ok":
        # Drop the broken connection so the next request opens a fresh one.
        connections["default"].close_if_unusable_or_obsolete()
    ready = "unavailable" not in results.values()
    return JsonResponse({"status": "ok" if ready else "unavailable", **results}, status=200 if ready else 503)


PROBES = {"/healthz": healthz, "/healthz/": healthz, "/readyz": readyz, "/readyz/": readyz}


class HealthCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path)
        if probe is not None and request.method in ("GET", "HEAD"):
            return probe(request)
        return self.get_response(request)


class VersionHeaderMiddleware:
    """X-App-Version on every response, probes included; no header when APP_VERSION is unset."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.version = os.environ.get("APP_VERSION", "").strip()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.version:
            response["X-App-Version"] = self.version
        return response
