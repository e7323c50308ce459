import pytest
from django.db.utils import OperationalError

from {{ cookiecutter.project_slug }} import health


def test_healthz_answers_without_touching_the_database(client):
    # No django_db mark: pytest-django makes any query in this test an error.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ok_when_the_database_answers(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


@pytest.mark.django_db
def test_readyz_answers_503_when_the_database_is_down(client, monkeypatch):
    def database_down():
        raise OperationalError("connection refused")

    monkeypatch.setitem(health.CHECKS, "database", database_down)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["database"] == "unavailable"
{%- if cookiecutter.key_value_store != "none" %}


@pytest.mark.django_db
def test_readyz_answers_503_when_the_store_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["{{ cookiecutter.key_value_store }}"] == "unavailable"
    assert response.json()["database"] == "ok"
{%- endif %}


def test_probes_need_neither_the_public_host_nor_https(client, settings):
    """Docker and load balancers call the container by IP, over plain HTTP."""
    settings.ALLOWED_HOSTS = ["{{ cookiecutter.__domain_name }}"]
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/healthz", HTTP_HOST="172.18.0.5:8000")
    assert response.status_code == 200
    # Other pages still get the host check and the redirect.
    assert client.get("/", HTTP_HOST="{{ cookiecutter.__domain_name }}").status_code == 301
    assert client.get("/", HTTP_HOST="172.18.0.5:8000").status_code == 400
