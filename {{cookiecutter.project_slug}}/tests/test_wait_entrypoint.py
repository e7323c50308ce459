"""wait_entrypoint.py: what it waits for, how it gives up, and that it becomes the command."""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import wait_entrypoint as we

SCRIPT = Path(we.__file__)


@contextlib.contextmanager
def loopback_server(reply: list[bytes] | None = None) -> Iterator[int]:
    """A TCP server on a free loopback port. Without a reply it accepts and closes each connection at
    once; with one it reads the request and answers reply[0] (a list, so a test can change it)."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                if reply is not None:
                    conn.recv(64)
                    conn.sendall(reply[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()


@pytest.fixture
def listener() -> Iterator[int]:
    with loopback_server() as port:
        yield port


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port: int = sock.getsockname()[1]
        return port


def run(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_URL") and k != "WAIT_FOR"}
    env.update(environ)
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)


def test_services_come_from_database_url_and_wait_for() -> None:
    services = we.services_from(
        {"DATABASE_URL": "postgres://user:pw@db:5433/app", "WAIT_FOR": "search:9200, [::1]:11211"}, ["mail:25"]
    )
    assert [(s.kind, s.host, s.port) for s in services] == [
        ("postgres", "db", 5433),
        ("tcp", "search", 9200),
        ("tcp", "::1", 11211),
        ("tcp", "mail", 25),
    ]


def test_sqlite_needs_no_waiting() -> None:
    assert we.services_from({"DATABASE_URL": "sqlite:///db.sqlite3"}, []) == []


def test_postgres_port_defaults_to_5432() -> None:
    assert we.services_from({"DATABASE_URL": "postgres://u:p@db/app"}, [])[0].port == 5432


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"DATABASE_URL": "postgres://u:p@db:notaport/app"}, "DATABASE_URL is malformed"),
        ({"DATABASE_URL": "db:5432"}, "DATABASE_URL is malformed"),
        ({"DATABASE_URL": "postgres:///app"}, "names no host"),
        ({"WAIT_FOR": "db"}, "is not HOST:PORT"),
    ],
)
def test_malformed_addresses_are_config_errors(environ: dict[str, str], message: str) -> None:
    with pytest.raises(we.ConfigError, match=message):
        we.services_from(environ, [])


def test_returns_once_the_port_accepts(listener: int) -> None:
    we.wait_for_services([we.Service("tcp", "127.0.0.1", listener)], timeout=5, attempt_timeout=1)


def test_waits_for_a_port_that_opens_later() -> None:
    port = free_port()
    servers = []

    def open_later() -> None:
        time.sleep(1.5)
        servers.append(socket.create_server(("127.0.0.1", port)))

    threading.Thread(target=open_later, daemon=True).start()
    started = time.monotonic()
    we.wait_for_services([we.Service("tcp", "127.0.0.1", port)], timeout=10, attempt_timeout=1, interval=0.2)
    assert time.monotonic() - started >= 1.4
    servers[0].close()


def test_gives_up_after_the_timeout_and_names_the_service() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(we.NotReady, match=rf"gave up after 1s waiting for tcp at 127\.0\.0\.1:{port} \(cannot connect"):
        we.wait_for_services([we.Service("tcp", "127.0.0.1", port)], timeout=1, attempt_timeout=1, interval=0.2)
    assert time.monotonic() - started < 5


def test_an_open_port_is_not_a_ready_postgres(listener: int) -> None:
    """Something accepts TCP on the port, but it is not a Postgres that accepts a connection."""
    service = we.services_from({"DATABASE_URL": f"postgres://u:p@127.0.0.1:{listener}/app"}, [])[0]
    with pytest.raises(we.NotReady, match=rf"waiting for postgres at 127\.0\.0\.1:{listener}"):
        we.wait_for_services([service], timeout=1.5, attempt_timeout=1, interval=0.2)
{%- if cookiecutter.key_value_store != "none" %}


@pytest.fixture
def fake_redis() -> Iterator[tuple[int, list[bytes]]]:
    reply = [b"+PONG\r\n"]
    with loopback_server(reply) as port:
        yield port, reply


def test_redis_is_ready_when_it_answers_ping(fake_redis: tuple[int, list[bytes]]) -> None:
    port, _ = fake_redis
    service = we.services_from({"REDIS_URL": f"redis://127.0.0.1:{port}/0"}, [])[0]
    assert service.kind == "redis"
    we.wait_for_services([service], timeout=3, attempt_timeout=1)


def test_redis_still_loading_is_not_ready(fake_redis: tuple[int, list[bytes]]) -> None:
    port, reply = fake_redis
    reply[0] = b"-LOADING Redis is loading the dataset in memory\r\n"
    service = we.Service("redis", "127.0.0.1", port)
    with pytest.raises(we.NotReady, match="LOADING"):
        we.wait_for_services([service], timeout=1, attempt_timeout=1, interval=0.2)
{%- endif %}


def test_becomes_the_command_keeping_its_pid(listener: int) -> None:
    """os.execvp: the command runs in the same process, so Docker's signals reach it."""
    process = subprocess.Popen(
        [
            sys.executable,
            str(SCRIPT),
            "--wait-for",
            f"127.0.0.1:{listener}",
            "--",
            sys.executable,
            "-c",
            "import os; print(os.getpid())",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert int(out.strip()) == process.pid


def test_exit_code_is_the_commands() -> None:
    result = run(sys.executable, "-c", "raise SystemExit(7)")
    assert result.returncode == 7


def test_unreachable_service_exits_1_with_a_clear_message() -> None:
    port = free_port()
    result = run("--timeout", "1", "--wait-for", f"127.0.0.1:{port}", "true")
    assert result.returncode == 1
    assert f"gave up after 1s waiting for tcp at 127.0.0.1:{port}" in result.stderr


def test_unresolvable_host_exits_1_naming_the_host() -> None:
    result = run("true", WAIT_TIMEOUT="1", DATABASE_URL="postgres://u:p@no-such-host.invalid:5432/app")
    assert result.returncode == 1
    assert "waiting for postgres at no-such-host.invalid:5432" in result.stderr
    assert "gave up after 1s" in result.stderr


def test_malformed_url_exits_2_at_once() -> None:
    result = run("true", DATABASE_URL="postgres://u:p@db:port/app")
    assert result.returncode == 2
    assert "DATABASE_URL is malformed" in result.stderr


@pytest.mark.parametrize(
    "args, message", [([], "no command given"), (["--timeout", "soon", "true"], "number of seconds")]
)
def test_bad_arguments_exit_2(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_missing_command_exits_127() -> None:
    result = run("no-such-command-anywhere")
    assert result.returncode == 127
    assert "cannot run 'no-such-command-anywhere'" in result.stderr


def test_a_checkout_the_container_cannot_write_is_announced_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Development only (CHECK_SOURCE_WRITABLE): an image built for uid 1000 in a checkout root owns could not
    write migrations; the warning names the owner's ids to rebuild with."""
    assert we.source_not_writable({}) is None
    assert we.source_not_writable({"CHECK_SOURCE_WRITABLE": str(tmp_path)}) is None  # writable
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    warning = we.source_not_writable({"CHECK_SOURCE_WRITABLE": str(tmp_path)})
    owner = tmp_path.stat()
    assert warning is not None
    assert f"owned by uid {owner.st_uid}" in warning and "makemigrations and startapp will fail" in warning
    assert warning.endswith(f"env UID={owner.st_uid} GID={owner.st_gid} docker compose up --build --wait")
