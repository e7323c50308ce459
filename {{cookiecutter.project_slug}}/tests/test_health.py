{% if cookiecutter.key_value_store != "none" -%}
import contextlib
import socket
import threading
from collections.abc import Iterator

{% endif -%}
import pytest
from django.db.utils import OperationalError
from django.test import Client
from pytest_django import Settings

from {{ cookiecutter.project_slug }} import health


@pytest.mark.parametrize("path", ["/healthz", "/healthz/"])
def test_healthz_answers_without_touching_the_database(client: Client, path: str) -> None:
    # No django_db mark: pytest-django makes any query in this test an error.
    response = client.get(path)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/readyz", "/readyz/"])
def test_readyz_is_ok_when_the_database_answers(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


@pytest.mark.django_db
def test_readyz_answers_503_when_the_database_is_down(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def database_down() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setitem(health.CHECKS, "database", database_down)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["database"] == "unavailable"
{%- if cookiecutter.key_value_store != "none" %}


@pytest.mark.django_db
def test_readyz_answers_503_when_the_store_is_down(client: Client, settings: Settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["{{ cookiecutter.key_value_store }}"] == "unavailable"
    assert response.json()["database"] == "ok"


@pytest.mark.django_db
def test_readyz_reports_a_store_that_is_not_configured_as_such(client: Client, settings: Settings) -> None:
    settings.REDIS_URL = ""  # local work without {{ cookiecutter.key_value_store | capitalize }}
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["{{ cookiecutter.key_value_store }}"] == "not configured"


# RESP3 (redis-py's default): HELLO gets a map that names the protocol.
REPLIES = {b"HELLO": b"%1\r\n+proto\r\n:3\r\n", b"PING": b"+PONG\r\n"}


@contextlib.contextmanager
def fake_store() -> Iterator[tuple[int, list[socket.socket]]]:
    """A loopback server that answers the commands redis-py sends (+OK to all but HELLO and PING) and
    counts the connections it accepts."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def answer(conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as requests:
            while not stop.is_set() and (header := requests.readline()):
                words: list[bytes] = []
                for _ in range(int(header[1:])):  # *<count>, then $<length> and the word for each
                    requests.readline()
                    words.append(requests.readline().strip().upper())
                conn.sendall(REPLIES.get(words[0], b"+OK\r\n"))

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            accepted.append(conn)
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join()
        server.close()


@pytest.mark.django_db
def test_readyz_reuses_its_store_connection(client: Client, settings: Settings) -> None:
    with fake_store() as (port, accepted):
        settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
        for _ in range(5):
            response = client.get("/readyz")
            assert response.status_code == 200, response.json()
            assert response.json()["{{ cookiecutter.key_value_store }}"] == "ok"
        assert len(accepted) == 1, f"{len(accepted)} connections for 5 probes"
{%- endif %}


def test_probes_need_neither_the_public_host_nor_https(client: Client, settings: Settings) -> None:
    """Docker and load balancers call the container by IP, over plain HTTP."""
    settings.ALLOWED_HOSTS = ["{{ cookiecutter.__domain_name }}"]
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/healthz", HTTP_HOST="172.18.0.5:8000")
    assert response.status_code == 200
    # Other pages still get the host check and the redirect.
    assert client.get("/", HTTP_HOST="{{ cookiecutter.__domain_name }}").status_code == 301
    assert client.get("/", HTTP_HOST="172.18.0.5:8000").status_code == 400


@pytest.mark.django_db
def test_every_response_names_the_running_version(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """compose.prod.yaml sets APP_VERSION to the image's tag; probes, pages and errors all carry it."""
    monkeypatch.setenv("APP_VERSION", "1.4.2")
    for path in ("/healthz", "/readyz", "/", "/no-such-page/"):
        assert client.get(path)["X-App-Version"] == "1.4.2", path


def test_no_version_header_without_app_version(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_VERSION", raising=False)
    assert "X-App-Version" not in client.get("/healthz")
