#!/usr/bin/env python
"""Wait until the services this container needs answer, then become the given command.

    python wait_entrypoint.py [--timeout SECONDS] [--wait-for HOST:PORT ...] [--] COMMAND [ARG ...]

What it waits for:
  * DATABASE_URL: a PostgreSQL server that accepts a real connection. An open port is not
    enough: Postgres opens it before it accepts queries, and refuses logins while it starts.
{%- if cookiecutter.key_value_store != "none" %}
  * REDIS_URL: a {{ cookiecutter.key_value_store | capitalize }} server that answers PING (it speaks the Redis protocol).
{%- endif %}
  * every HOST:PORT given with --wait-for or in WAIT_FOR (comma or space separated): an open TCP port.

In development (compose.yaml sets CHECK_SOURCE_WRITABLE=/app) it first warns when the bind-mounted checkout is
not writable by the container's user, and says how to rebuild: makemigrations and startapp would fail.

WAIT_TIMEOUT (default 60 s) bounds the whole wait, WAIT_ATTEMPT_TIMEOUT (default 5 s) each try.
On timeout it names what it waited for and why, and exits 1; a malformed URL or argument exits 2.
When everything answers it calls os.execvp, so the command replaces this process: signals from
Docker (SIGTERM on stop) reach the server directly, and its exit code is the container's.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from secret_files import SecretFileError, load_secret_files  # Docker Swarm: NAME_FILE secrets

USAGE = "usage: wait_entrypoint.py [--timeout SECONDS] [--wait-for HOST:PORT ...] [--] COMMAND [ARG ...]"


class ConfigError(Exception):
    """A malformed argument or URL: waiting longer would not help."""


class NotReady(Exception):
    """The service did not answer (yet); the message says why."""


@dataclass(frozen=True)
class Service:
    kind: str  # "postgres", {% if cookiecutter.key_value_store != "none" %}"redis", {% endif %}or "tcp"
    host: str
    port: int
    url: str = ""

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.kind} at {host}:{self.port}"


def parse_host_port(text: str) -> Service:
    """'db:5432' or '[::1]:5432' -> a TCP service."""
    try:
        parts = urlsplit(f"//{text.strip()}")
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not HOST:PORT ({exc})") from None
    if not host or port is None:
        raise ConfigError(f"{text!r} is not HOST:PORT (for example db:5432)")
    return Service("tcp", host, port)


def parse_url(name: str, url: str, default_port: int) -> Service | None:
    """A service from a URL variable; None when it names no network service (e.g. SQLite)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ConfigError(f"{name} is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme in ("postgres", "postgresql", "pgsql"):
        kind = "postgres"
{%- if cookiecutter.key_value_store != "none" %}
    elif scheme in ("redis", "rediss"):
        kind = "redis"
{%- endif %}
    elif scheme.startswith("sqlite"):
        return None
    elif not scheme:
        raise ConfigError(f"{name} is malformed: no scheme (expected e.g. postgres://user:password@db:5432/name)")
    else:
        kind = "tcp"
    if not host:
        raise ConfigError(f"{name} is malformed: it names no host")
    return Service(kind, host, port or default_port, url)


def services_from(environ: dict[str, str], wait_for: list[str]) -> list[Service]:
    services = []
    if environ.get("DATABASE_URL", "").strip():
        services.append(parse_url("DATABASE_URL", environ["DATABASE_URL"].strip(), 5432))
{%- if cookiecutter.key_value_store != "none" %}
    if environ.get("REDIS_URL", "").strip():
        services.append(parse_url("REDIS_URL", environ["REDIS_URL"].strip(), 6379))
{%- endif %}
    for item in environ.get("WAIT_FOR", "").replace(",", " ").split() + wait_for:
        services.append(parse_host_port(item))
    return [service for service in services if service is not None]


def open_socket(service: Service, timeout: float) -> socket.socket:
    try:
        return socket.create_connection((service.host, service.port), timeout=timeout)
    except socket.gaierror as exc:
        raise NotReady(f"cannot resolve host {service.host!r} ({exc.strerror})") from None
    except OSError as exc:
        raise NotReady(f"cannot connect ({exc.strerror or exc})") from None


def probe_postgres(service: Service, timeout: float) -> None:
    import psycopg2  # imported here: only this check needs it

    try:
        psycopg2.connect(service.url, connect_timeout=max(1, round(timeout))).close()
    except psycopg2.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "password authentication failed" in reason or "does not exist" in reason:
            # The server is up and says no: waiting will not change that.
            raise ConfigError(f"{service} refused DATABASE_URL's credentials: {reason}") from None
        raise NotReady(reason) from None
{% if cookiecutter.key_value_store != "none" %}

def probe_redis(service: Service, timeout: float) -> None:
    with open_socket(service, timeout) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
        except OSError as exc:
            raise NotReady(f"no reply to PING ({exc})") from None
    # +PONG, or -NOAUTH when a password is set: either way the server is up and serving.
    if not reply.startswith((b"+PONG", b"-NOAUTH")):
        raise NotReady(f"answered PING with {reply.decode(errors='replace').strip()!r}")
{% endif %}

def probe_tcp(service: Service, timeout: float) -> None:
    open_socket(service, timeout).close()


PROBES = {
    "postgres": probe_postgres,
{%- if cookiecutter.key_value_store != "none" %}
    "redis": probe_redis,
{%- endif %}
    "tcp": probe_tcp,
}


def log(message: str) -> None:
    print(f"wait_entrypoint: {message}", file=sys.stderr, flush=True)


def source_not_writable(environ: dict[str, str]) -> str | None:
    """The warning for a checkout this container cannot write (an image built with other ids than the checkout
    owner's: plain Compose's default 1000 in a checkout root owns), or None."""
    path = environ.get("CHECK_SOURCE_WRITABLE")
    if not path or not os.path.isdir(path) or os.access(path, os.W_OK):
        return None
    owner = os.stat(path)
    return (
        f"warning: {path} (the checkout, owned by uid {owner.st_uid}) is not writable by this container's uid "
        f"{os.getuid()}: makemigrations and startapp will fail with Permission denied. Rebuild the image with the "
        f"owner's ids: make up, or env UID={owner.st_uid} GID={owner.st_gid} docker compose up --build --wait"
    )


def wait_for_services(services: list[Service], timeout: float, attempt_timeout: float, interval: float = 1.0) -> None:
    """Return when every service answers; raise NotReady naming the ones that did not in time."""
    deadline = time.monotonic() + timeout
    pending = {service: "not tried yet" for service in services}
    while pending:
        for service in list(pending):
            remaining = deadline - time.monotonic()
            try:
                PROBES[service.kind](service, max(0.5, min(attempt_timeout, remaining)))
            except NotReady as exc:
                if pending[service] != str(exc):
                    log(f"waiting for {service}: {exc}")
                pending[service] = str(exc)
            else:
                log(f"{service} is ready")
                del pending[service]
        if not pending:
            return
        if time.monotonic() + interval > deadline:
            details = "; ".join(f"{service} ({reason})" for service, reason in pending.items())
            raise NotReady(f"gave up after {timeout:g}s waiting for {details}")
        time.sleep(interval)


def parse_args(argv: list[str], environ: dict[str, str]) -> tuple[float, float, list[str], list[str]]:
    def seconds(name: str, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{name} must be a number of seconds, not {text!r}") from None
        if value <= 0:
            raise ConfigError(f"{name} must be more than 0 seconds")
        return value

    timeout = seconds("WAIT_TIMEOUT", environ.get("WAIT_TIMEOUT", "60"))
    attempt_timeout = seconds("WAIT_ATTEMPT_TIMEOUT", environ.get("WAIT_ATTEMPT_TIMEOUT", "5"))
    wait_for: list[str] = []
    args = list(argv)
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option == "--":
            break
        if option in ("-h", "--help"):
            print(__doc__)
            raise SystemExit(0)
        if option not in ("--timeout", "--wait-for") or not args:
            raise ConfigError(f"unknown option or missing value: {option}\n{USAGE}")
        value = args.pop(0)
        if option == "--timeout":
            timeout = seconds("--timeout", value)
        else:
            wait_for.append(value)
    if not args:
        raise ConfigError(f"no command given\n{USAGE}")
    return timeout, attempt_timeout, wait_for, args


def main(argv: list[str]) -> None:
    # Docker Swarm: NAME_FILE secrets (DATABASE_URL_FILE...) become NAME first, for the wait and the command.
    try:
        load_secret_files()
    except SecretFileError as exc:
        log(f"error: {exc}")
        raise SystemExit(2) from None
    if warning := source_not_writable(dict(os.environ)):
        log(warning)
    try:
        timeout, attempt_timeout, wait_for, command = parse_args(argv, dict(os.environ))
        services = services_from(dict(os.environ), wait_for)
        wait_for_services(services, timeout, attempt_timeout)
    except ConfigError as exc:
        log(f"error: {exc}")
        raise SystemExit(2) from None
    except NotReady as exc:
        log(f"error: {exc}. Is the service running, and is its address right?")
        raise SystemExit(1) from None
    try:
        os.execvp(command[0], command)  # nosec B606: the command is the container's own CMD, no shell on purpose
    except OSError as exc:
        log(f"error: cannot run {command[0]!r}: {exc.strerror}")
        raise SystemExit(127) from None


if __name__ == "__main__":
    main(sys.argv[1:])
