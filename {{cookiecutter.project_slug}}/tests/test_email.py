"""Which backend sends the mail, and the password reset it is needed for."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.mail import EmailMessage
from django.test import Client

from .factories import UserFactory

PROJECT = Path(__file__).resolve().parent.parent
LIVE = {"DEBUG": "0", "SECRET_KEY": "a-long-random-production-key-0123456789", "ALLOWED_HOSTS": "example.com"}
NAMES = ["DEBUG", "EMAIL_URL", "DEFAULT_FROM_EMAIL", "SERVER_EMAIL", "ADMINS", "DATABASE_URL"]
{%- if cookiecutter.key_value_store != "none" %}
LIVE["REDIS_URL"] = "redis://store:6379/0"
NAMES.append("REDIS_URL")
{%- endif %}
{%- if cookiecutter.media_storage == "s3" %}
# Media in object storage: the bucket's settings, required on the live site (nothing here connects to it).
LIVE.update(MEDIA_S3_BUCKET="media", MEDIA_S3_REGION="us-east-1")
LIVE.update(MEDIA_S3_ACCESS_KEY_ID="test-key-id", MEDIA_S3_SECRET_ACCESS_KEY="test-secret")
{%- endif %}
# What the default mailer really uses (Django 6.1's MAILERS, or 5.2's EMAIL_* settings).
INSPECT = """
import json, django
django.setup()
from django.conf import settings
from django.core import mail
backend = mail.mailers["default"] if hasattr(mail, "mailers") else mail.get_connection()
found = {name: getattr(backend, name, None) for name in ("host", "port", "username", "password", "use_tls", "use_ssl")}
found["BACKEND"] = f"{type(backend).__module__}.{type(backend).__name__}"
found.update(DEFAULT_FROM_EMAIL=settings.DEFAULT_FROM_EMAIL, SERVER_EMAIL=settings.SERVER_EMAIL, ADMINS=settings.ADMINS)
print(json.dumps(found))
"""


def run_settings(code: str, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in NAMES}
    env.update(environ, DJANGO_SETTINGS_MODULE="config.settings")
    return subprocess.run([sys.executable, "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True)


def mail_settings(**environ: str) -> dict[str, Any]:
    result = run_settings(INSPECT, **environ)
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def test_development_prints_mail_to_the_console_even_with_an_email_url() -> None:
    found = mail_settings(DEBUG="1", EMAIL_URL="smtp+tls://user:secret@smtp.example.com:587")
    assert found["BACKEND"] == "django.core.mail.backends.console.EmailBackend"


@pytest.mark.parametrize(
    "url, host, port, tls, ssl",
    [
        ("smtp+tls://apikey:p%40ss%2Fword@smtp.example.com", "smtp.example.com", 587, True, False),
        ("smtps://apikey:p%40ss%2Fword@mail.example.com:2465", "mail.example.com", 2465, False, True),
        ("smtp://relay:25", "relay", 25, False, False),
    ],
)
def test_the_live_site_sends_through_the_smtp_server_in_email_url(
    url: str, host: str, port: int, tls: bool, ssl: bool
) -> None:
    found = mail_settings(**LIVE, EMAIL_URL=url)
    assert found["BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (found["host"], found["port"], found["use_tls"], found["use_ssl"]) == (host, port, tls, ssl)
    if "apikey" in url:
        assert (found["username"], found["password"]) == ("apikey", "p@ss/word")


@pytest.mark.parametrize("url", ["https://user:hunter2@smtp.example.com", "smtp+tls://user:hunter2@:587", "smtp://h:x"])
def test_a_malformed_email_url_stops_the_start_without_showing_the_password(url: str) -> None:
    result = run_settings("import django; django.setup()", **LIVE, EMAIL_URL=url)
    assert result.returncode != 0
    assert "EMAIL_URL" in result.stderr and "is not an SMTP URL" in result.stderr
    assert "hunter2" not in result.stderr


def test_without_email_url_the_live_site_starts_and_a_mail_fails_loudly() -> None:
    code = "import django; django.setup(); from django.core.mail import send_mail; send_mail('s', 'b', None, ['a@b.c'])"
    result = run_settings(code, **LIVE)
    assert "ImproperlyConfigured: EMAIL_URL is not set, so this mail cannot be sent" in result.stderr
    assert result.returncode != 0


def test_without_email_url_an_error_report_to_admins_is_logged_not_raised() -> None:
    # Django mails ADMINS from its logging, with fail_silently: a missing EMAIL_URL must not raise out of it.
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('django.request').error('Internal Server Error: /boom/'); print('the request went on')"
    )
    result = run_settings(code, **LIVE, ADMINS="ops@example.com")
    assert result.returncode == 0, result.stderr
    assert "the request went on" in result.stdout
    # One line says which report was not sent, and why.
    assert [
        line
        for line in result.stdout.splitlines()
        if "config.mail" in line and "Internal Server Error: /boom/" in line and "EMAIL_URL is not set" in line
    ], result.stdout


def test_senders_and_admins_come_from_the_environment() -> None:
    found = mail_settings(
        **LIVE, DEFAULT_FROM_EMAIL="shop@example.com", SERVER_EMAIL="errors@example.com", ADMINS="a@x.org, b@x.org"
    )
    assert (found["DEFAULT_FROM_EMAIL"], found["SERVER_EMAIL"]) == ("shop@example.com", "errors@example.com")
{%- if cookiecutter.django_version == "5.2" %}
    assert found["ADMINS"] == [["a@x.org", "a@x.org"], ["b@x.org", "b@x.org"]]
{%- else %}
    assert found["ADMINS"] == ["a@x.org", "b@x.org"]
{%- endif %}


@pytest.mark.django_db
def test_a_forgotten_password_is_reset_through_the_mailed_link(client: Client, mailoutbox: list[EmailMessage]) -> None:
    ada = UserFactory.create(email="ada@example.com", password="old")
    sent = client.post("/admin/password-reset/", {"email": "ada@example.com"})
    assert sent.status_code == 302 and sent.headers["Location"] == "/accounts/password-reset/sent/"
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["ada@example.com"]
    found = re.search(r"https?://[^/\s]+(/accounts/reset/\S+/)", str(mailoutbox[0].body))
    assert found, mailoutbox[0].body
    link = found.group(1)
    form = client.get(link, follow=True)
    assert form.status_code == 200 and "new_password1" in form.text
    new = "a-New-password-42"
    done = client.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    assert done.status_code == 302 and done.headers["Location"] == "/accounts/reset/done/"
    assert client.login(username=ada.get_username(), password=new)
