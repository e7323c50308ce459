"""Sign-in protection: failed logins lock out a client and an account until a cool-off, and password resets are
limited per client and per address (README "Sign-in protection")."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.mail import EmailMessage
from django.test import Client, RequestFactory
from django.utils import timezone
from pytest_django import Settings

from users.models import User as UserModel

from .factories import PASSWORD, UserFactory

if TYPE_CHECKING:
    # What the test client returns (django-stubs' name): a response with .text, .json(), .context and the like.
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

User = get_user_model()
{%- if cookiecutter.username_type == "email" %}
NAME, OTHER = "ada@example.com", "grace@example.com"
{%- else %}
NAME, OTHER = "ada", "grace"
{%- endif %}
ATTACKER, ELSEWHERE = "203.0.113.7", "198.51.100.9"


@pytest.fixture
def limits(settings: Settings) -> Iterator[Settings]:
    """The limits on (the test settings turn axes off), small, with empty counts."""
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    settings.PASSWORD_RESET_LIMIT_PER_CLIENT = 3
    settings.PASSWORD_RESET_LIMIT_PER_ADDRESS = 2
    cache.clear()
    yield settings
    cache.clear()


def sign_in(client: Client, name: str, password: str, ip: str = ATTACKER) -> Response:
    # nginx puts the visitor's address in X-Real-IP (CLIENT_IP_HEADER); the connection is nginx's, for everyone.
    # The site's login (allauth's), which the admin's sends to: axes counts its failures inside authenticate().
    form = {"login": name, "password": password, "next": "/admin/"}
    return client.post("/accounts/login/", form, headers={"X-Real-IP": ip})


def create(name: str) -> UserModel:
    return UserFactory.create(**{User.USERNAME_FIELD: name}, is_staff=True)


def cool_off_passes() -> None:
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))


@pytest.mark.django_db
def test_failed_logins_lock_the_account_with_a_429_until_the_cool_off_lifts(client: Client, limits: Settings) -> None:
    create(NAME)
    assert [sign_in(client, NAME, "wrong").status_code for _ in range(2)] == [200, 200]  # the form again
    locked = sign_in(client, NAME, "wrong")
    assert locked.status_code == 429 and "too many failed sign-ins" in locked.text and "15 minutes" in locked.text
    # Locked: the right password is refused too, from this client and from any other (the account is locked).
    assert sign_in(client, NAME, PASSWORD).status_code == 429
    assert sign_in(client, NAME, PASSWORD, ip=ELSEWHERE).status_code == 429
    # Failures while locked do not push the end of the lock back, so an attacker cannot hold it for ever.
    times = sorted(AccessAttempt.objects.values_list("attempt_time", flat=True))
    sign_in(client, NAME, "wrong", ip=ELSEWHERE)
    assert sorted(AccessAttempt.objects.values_list("attempt_time", flat=True)) == times
    cool_off_passes()
    signed_in = sign_in(client, NAME, PASSWORD)
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/admin/"


@pytest.mark.django_db
def test_a_client_that_fails_on_many_accounts_is_locked_out_of_all(client: Client, limits: Settings) -> None:
    create(NAME)
    for name in ("x1@example.com", "x2@example.com", "x3@example.com"):  # the form takes only addresses by email
        sign_in(client, name, "wrong")
    assert sign_in(client, NAME, PASSWORD).status_code == 429
    assert sign_in(client, NAME, PASSWORD, ip=ELSEWHERE).status_code == 302  # the account itself is not locked
{%- if cookiecutter.username_type == "email" %}


@pytest.mark.django_db
def test_every_spelling_of_an_address_counts_for_the_one_account(client: Client, limits: Settings) -> None:
    create(NAME)
    for number, spelling in enumerate(["ADA@example.com", "Ada@Example.COM", "ada@EXAMPLE.com"]):
        sign_in(client, spelling, "wrong", ip=f"192.0.2.{number}")
    assert sign_in(client, NAME, PASSWORD, ip=ELSEWHERE).status_code == 429
{%- endif %}


@pytest.mark.django_db
def test_a_successful_login_clears_the_failures_before_it(client: Client, limits: Settings) -> None:
    create(NAME)
    for _ in range(2):
        sign_in(client, NAME, "wrong")
    assert sign_in(client, NAME, PASSWORD).status_code == 302
    client.logout()
    for _ in range(2):
        assert sign_in(client, NAME, "wrong").status_code == 200
    assert sign_in(client, NAME, PASSWORD).status_code == 302


@pytest.mark.django_db
def test_an_admin_unlocks_an_account_at_once(client: Client, limits: Settings) -> None:
    from django.core.management import call_command

    create(NAME)
    for _ in range(3):
        sign_in(client, NAME, "wrong")
    assert sign_in(client, NAME, PASSWORD, ip=ELSEWHERE).status_code == 429
    call_command("axes_reset_username", NAME)
    call_command("axes_reset_ip", ATTACKER)
    assert sign_in(client, NAME, PASSWORD).status_code == 302


def reset(client: Client, address: str, ip: str = ATTACKER) -> Response:
    return client.post("/admin/password-reset/", {"email": address}, headers={"X-Real-IP": ip})


@pytest.mark.django_db
def test_password_resets_are_limited_per_address(
    client: Client, limits: Settings, mailoutbox: list[EmailMessage]
) -> None:
    create(NAME)
    address = User.objects.get().email
    assert [reset(client, address, ip=f"192.0.2.{n}").status_code for n in range(2)] == [302, 302]
    assert len(mailoutbox) == 2
    refused = reset(client, address.upper(), ip="192.0.2.9")  # another spelling, another client: the same address
    assert refused.status_code == 429 and "too many password reset requests" in refused.text
    assert len(mailoutbox) == 2


@pytest.mark.django_db
def test_password_resets_are_limited_per_client_whether_or_not_the_address_has_an_account(
    client: Client, limits: Settings, mailoutbox: list[EmailMessage]
) -> None:
    create(NAME)
    for address in ("nobody@example.com", "someone@example.com", "anyone@example.com"):
        assert reset(client, address).status_code == 302  # the same page: nothing told about the address
    assert reset(client, User.objects.get().email).status_code == 429
    assert mailoutbox == []
    assert reset(client, User.objects.get().email, ip=ELSEWHERE).status_code == 302
    assert len(mailoutbox) == 1


def test_the_client_is_the_address_nginx_names(rf: RequestFactory, settings: Settings) -> None:
    from users.limits import client_ip

    request = rf.get("/", headers={"X-Real-IP": "203.0.113.7"}, REMOTE_ADDR="172.18.0.5")
    assert client_ip(request) == "203.0.113.7"
    assert client_ip(rf.get("/", REMOTE_ADDR="127.0.0.1")) == "127.0.0.1"  # nothing in front (development)
    settings.CLIENT_IP_HEADER = ""
    assert client_ip(request) == "172.18.0.5"
