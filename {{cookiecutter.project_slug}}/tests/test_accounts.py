"""Accounts (django-allauth, README "Accounts"): sign-up with a verified address, login with a second factor,
staff sent to set one up, the admin behind the same login, social login from the environment. The browser flows
(passkeys, the pages' scripts under the CSP) are proven on the live stack by the template's tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import import_module
from typing import TYPE_CHECKING, Any

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.apps import apps as django_apps
from django.core.cache import cache
from django.core.mail import EmailMessage
from django.core.management import call_command
from django.test import Client
from pytest_django import Settings

from users.models import User

from .factories import PASSWORD, UserFactory
from .test_settings import NAMES, PRODUCTION, PROJECT

if TYPE_CHECKING:
    # What the test client returns (django-stubs' name): a response with .text, .json(), .context and the like.
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

NEW_PASSWORD = "another-Long-password-7"
ADDRESS = "ada@example.com"
{%- if cookiecutter.username_type == "email" %}
LOGIN = ADDRESS
SIGN_UP = {"email": ADDRESS, "password1": PASSWORD, "password2": PASSWORD}
{%- else %}
LOGIN = "ada"
SIGN_UP = {"username": "ada", "email": ADDRESS, "password1": PASSWORD, "password2": PASSWORD}
{%- endif %}


FIELDS = [
    "ACCOUNT_EMAIL_VERIFICATION",
    "ACCOUNT_PREVENT_ENUMERATION",
    "SITE_URL",
    "STAFF_MFA_REQUIRED",
    "MFA_PASSKEY_LOGIN_ENABLED",
    "MFA_SUPPORTED_TYPES",
    "SOCIALACCOUNT_PROVIDERS",
    "INSTALLED_APPS",
]


def load_settings(**environ: str) -> subprocess.CompletedProcess[str]:
    """config.settings in a fresh interpreter with these variables (none of the accounts' own from outside)."""
    code = "import json; from django.conf import settings as s; "
    code += f"print(json.dumps(dict((n, getattr(s, n)) for n in {FIELDS!r})))"
    ours = ("SITE_URL", "STAFF_MFA_REQUIRED", "ACCOUNT_EMAIL_VERIFICATION", "SOCIAL_")
    env = {key: value for key, value in os.environ.items() if key not in NAMES and not key.startswith(ours)}
    env.update(environ, DJANGO_SETTINGS_MODULE="config.settings")
    return subprocess.run([sys.executable, "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True)


def values(**environ: str) -> dict[str, Any]:
    result = load_settings(**environ)
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


@pytest.fixture(autouse=True)
def fresh_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    """allauth's rate limits and used TOTP codes live in the cache (a database table without a store)."""
    if request.node.get_closest_marker("django_db"):
        request.getfixturevalue("db")
        cache.clear()
    yield


def make_user(verified: bool = True, **extra: Any) -> User:
    names = {"email": ADDRESS} if User.USERNAME_FIELD == "email" else {"username": LOGIN, "email": ADDRESS}
    user = UserFactory.create(**names, **extra)
    # A superuser has a verified address already (users/accounts.py); everyone else gets the one asked for.
    EmailAddress.objects.update_or_create(user=user, email=ADDRESS, defaults={"verified": verified, "primary": True})
    return user


def code(secret: str) -> str:
    return str(format_hotp_value(hotp_value(secret, int(time.time()) // 30)))


def with_totp(user: User) -> str:
    secret: str = generate_totp_secret()
    TOTP.activate(user, secret)
    RecoveryCodes.activate(user)
    return secret


def log_in(client: Client, login: str = LOGIN, password: str = PASSWORD, **extra: str) -> Response:
    return client.post("/accounts/login/", {"login": login, "password": password, **extra})


def reset_mail(client: Client, page: str, mailoutbox: list[EmailMessage]) -> str:
    """The body of the one mail a reset of a user's password on `page` sends."""
    make_user()
    assert client.post(page, {"email": ADDRESS}).status_code == 302
    assert len(mailoutbox) == 1 and mailoutbox[0].to == [ADDRESS], mailoutbox
    return str(mailoutbox[0].body)


def reauthenticate(client: Client) -> None:
    """The password again: allauth asks for it before MFA is changed, however recent the login."""
    assert client.post("/accounts/reauthenticate/", {"password": PASSWORD}).status_code == 302


def test_production_requires_a_verified_address_and_development_does_not() -> None:
    assert values(**PRODUCTION)["ACCOUNT_EMAIL_VERIFICATION"] == "mandatory"
    assert values(DEBUG="1")["ACCOUNT_EMAIL_VERIFICATION"] == "optional"


def test_production_links_use_the_site_domain_over_https_and_staff_need_mfa() -> None:
    found = values(**{**PRODUCTION, "ALLOWED_HOSTS": "shop.example.com,www.shop.example.com"})
    assert found["SITE_URL"] == "https://shop.example.com"
    assert found["STAFF_MFA_REQUIRED"] is True and values(DEBUG="1")["STAFF_MFA_REQUIRED"] is False
    assert found["ACCOUNT_PREVENT_ENUMERATION"] is True
    assert found["MFA_PASSKEY_LOGIN_ENABLED"] is True and "webauthn" in found["MFA_SUPPORTED_TYPES"]


def test_social_login_is_off_by_default_and_configured_from_the_environment() -> None:
    assert values(DEBUG="1")["SOCIALACCOUNT_PROVIDERS"] == {}
    found = values(
        DEBUG="1",
        SOCIAL_LOGIN_PROVIDERS="github, google",
        SOCIAL_GITHUB_CLIENT_ID="gh-id",
        SOCIAL_GITHUB_SECRET="gh-secret",
        SOCIAL_GOOGLE_CLIENT_ID="g-id",
        SOCIAL_GOOGLE_SECRET="g-secret",
    )
    assert found["SOCIALACCOUNT_PROVIDERS"]["github"] == {"APPS": [{"client_id": "gh-id", "secret": "gh-secret"}]}
    assert "allauth.socialaccount.providers.google" in found["INSTALLED_APPS"]
    missing = load_settings(DEBUG="1", SOCIAL_LOGIN_PROVIDERS="github", SOCIAL_GITHUB_CLIENT_ID="gh-id")
    assert missing.returncode != 0 and "SOCIAL_GITHUB_SECRET is not set" in missing.stderr
    unknown = load_settings(DEBUG="1", SOCIAL_LOGIN_PROVIDERS="myspace")
    assert unknown.returncode != 0 and "does not provide" in unknown.stderr


def test_configured_providers_load_and_show_on_the_login_page() -> None:
    code = (
        "import django; django.setup(); from django.core.management import call_command; "
        "call_command('migrate', verbosity=0); from django.test import RequestFactory; "
        "from allauth.socialaccount.adapter import get_adapter; "
        "providers = get_adapter().list_providers(RequestFactory().get('/')); "
        "print([(p.id, p.app.client_id) for p in providers])"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("SOCIAL_")}
    env.update(
        DEBUG="1",
        DATABASE_URL="sqlite://:memory:",
        DJANGO_SETTINGS_MODULE="config.settings",
        SOCIAL_LOGIN_PROVIDERS="github",
        SOCIAL_GITHUB_CLIENT_ID="gh-id",
        SOCIAL_GITHUB_SECRET="gh-secret",
    )
    loaded = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[('github', 'gh-id')]"


@pytest.mark.django_db
def test_sign_up_mails_a_link_on_the_site_domain_and_login_waits_for_it(
    client: Client, settings: Settings, mailoutbox: list[EmailMessage]
) -> None:
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    settings.SITE_URL = "https://shop.example.com"
    signed_up = client.post("/accounts/signup/", SIGN_UP)
    assert signed_up.status_code == 302 and signed_up.headers["Location"] == "/accounts/confirm-email/"
    assert len(mailoutbox) == 1 and mailoutbox[0].to == [ADDRESS]
    link = re.search(r"https://shop\.example\.com(/accounts/confirm-email/[^/\s]+/)", str(mailoutbox[0].body))
    assert link, mailoutbox[0].body
    client.logout()
    held = log_in(client)  # not yet: the login sends the mail again and waits
    assert held.status_code == 302 and held.headers["Location"] == "/accounts/confirm-email/"
    assert client.post(link.group(1)).status_code == 302
    assert EmailAddress.objects.get(email=ADDRESS).verified
    assert log_in(client).status_code == 302 and client.get("/accounts/email/").status_code == 200


@pytest.mark.django_db
def test_sign_ups_past_the_limit_per_client_answer_429_and_make_no_account(settings: Settings) -> None:
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    limit = settings.SIGNUP_LIMIT_PER_CLIENT

    def sign_up(number: int, client: Client) -> int:
        name = {"username": f"user{number}"} if "username" in SIGN_UP else {}
        return client.post("/accounts/signup/", {**SIGN_UP, **name, "email": f"user{number}@example.com"}).status_code

    assert [sign_up(number, Client()) for number in range(limit + 1)] == [302] * limit + [429]
    assert User.objects.count() == limit
    assert sign_up(limit + 1, Client(HTTP_X_REAL_IP="203.0.113.9")) == 302  # another visitor, as nginx names it


@pytest.mark.django_db
def test_signing_up_with_a_taken_address_tells_nothing_and_mails_the_owner(
    client: Client, settings: Settings, mailoutbox: list[EmailMessage]
) -> None:
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    make_user()
    again = client.post("/accounts/signup/", {**SIGN_UP, **({"username": "other"} if "username" in SIGN_UP else {})})
    assert again.status_code == 302 and again.headers["Location"] == "/accounts/confirm-email/"  # as for a new one
    assert User.objects.count() == 1 and len(mailoutbox) == 1 and mailoutbox[0].to == [ADDRESS]
    reset = client.post("/accounts/password/reset/", {"email": "nobody@example.com"})
    assert reset.status_code == 302 and reset.headers["Location"] == "/accounts/password/reset/done/"
{% if cookiecutter.username_type == "email" %}

@pytest.mark.django_db
def test_every_spelling_of_an_address_signs_in_to_its_verified_account_and_no_mail_goes_out(
    settings: Settings, mailoutbox: list[EmailMessage]
) -> None:
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    user = User.objects.create_user(email="Sam@example.com", password=PASSWORD)
    EmailAddress.objects.create(user=user, email="sam@example.com", verified=True, primary=True)  # as allauth keeps it
    for spelling in ("Sam@example.com", "SAM@example.com", "\u017fam@example.com"):  # the long s
        signed_in = log_in(Client(), spelling)
        assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/", spelling
    assert mailoutbox == []  # none held for verification, no mail to a spelling typed
{% endif %}

@pytest.mark.django_db
def test_both_reset_pages_share_one_limit_per_address(
    client: Client, settings: Settings, mailoutbox: list[EmailMessage]
) -> None:
    settings.PASSWORD_RESET_LIMIT_PER_ADDRESS = 2
    make_user()
    sent = [
        client.post("/accounts/password/reset/", {"email": ADDRESS}, headers={"X-Real-IP": f"192.0.2.{n}"})
        for n in range(2)
    ]
    assert [answer.status_code for answer in sent] == [302, 302] and len(mailoutbox) == 2
    for page in ("/accounts/password/reset/", "/admin/password-reset/"):
        refused = client.post(page, {"email": ADDRESS.upper()}, headers={"X-Real-IP": "192.0.2.9"})
        assert refused.status_code == 429 and "too many password reset requests" in refused.text, page
    assert len(mailoutbox) == 2


@pytest.mark.django_db
def test_the_admins_reset_page_mails_its_link_on_the_site_domain_too(
    client: Client, settings: Settings, mailoutbox: list[EmailMessage]
) -> None:
    settings.SITE_URL = "https://shop.example.com"
    body = reset_mail(client, "/admin/password-reset/", mailoutbox)
    links = re.findall(r"\w+://[^/\s]+/", body)
    assert links and set(links) == {"https://shop.example.com/"}, body  # not the request's host (testserver)


@pytest.mark.django_db
def test_the_upgrade_migration_gives_earlier_users_a_verified_address_they_sign_in_with(
    client: Client, settings: Settings
) -> None:
    """users/migrations/0003 for a project made before accounts (upgraded through cruft): no user had an
    EmailAddress then, and mandatory verification would have locked every one of them out."""
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    spelled = "Ada@Example.com"
    names = {"email": spelled} if User.USERNAME_FIELD == "email" else {"username": LOGIN, "email": spelled}
    ada = User.objects.create_user(**names, password=PASSWORD)
    EmailAddress.objects.all().delete()  # as before accounts
    import_module("users.migrations.0003_email_addresses").add_addresses(django_apps, None)
    address = EmailAddress.objects.get(user=ada)
    assert (address.email, address.verified, address.primary) == (ADDRESS, True, True)
    assert log_in(client).status_code == 302


@pytest.mark.django_db
def test_login_cycles_the_session(client: Client) -> None:
    make_user()
    client.get("/accounts/login/")
    session = client.session  # a session the visitor had before logging in
    session["before"] = 1
    session.save()
    before = client.cookies["sessionid"].value
    assert log_in(client).status_code == 302
    assert client.cookies["sessionid"].value != before


@pytest.mark.django_db
def test_a_password_change_needs_the_old_one_and_then_only_the_new_one_signs_in(client: Client) -> None:
    make_user()
    assert log_in(client).status_code == 302
    change = {"oldpassword": "not-the-password", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    assert client.post("/accounts/password/change/", change).status_code == 200  # the form again, with its error
    change["oldpassword"] = PASSWORD
    assert client.post("/accounts/password/change/", change).status_code == 302
    assert log_in(Client()).status_code == 200  # refused
    assert log_in(Client(), password=NEW_PASSWORD).status_code == 302


@pytest.mark.django_db
def test_a_reset_link_on_the_site_domain_sets_a_new_password_once(
    client: Client, settings: Settings, mailoutbox: list[EmailMessage]
) -> None:
    settings.SITE_URL = "https://shop.example.com"
    body = reset_mail(client, "/accounts/password/reset/", mailoutbox)
    link = re.search(r"https://shop\.example\.com(/accounts/password/reset/key/[^/\s]+/)", body)
    assert link, body
    opened = client.get(link.group(1))  # allauth keeps the key in the session and sends the browser on
    assert opened.status_code == 302
    new = {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    assert client.post(opened.headers["Location"], new).status_code == 302
    assert log_in(Client(), password=NEW_PASSWORD).status_code == 302
    again = Client().get(link.group(1), follow=True)  # a used link is refused
    assert again.status_code == 200 and again.context["token_fail"]


@pytest.mark.django_db
def test_a_new_address_becomes_the_primary_only_once_its_mailed_link_is_followed(
    client: Client, settings: Settings, mailoutbox: list[EmailMessage]
) -> None:
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    settings.SITE_URL = "https://shop.example.com"
    user = make_user()
    assert log_in(client).status_code == 302
    new = "ada@new.example.com"
    assert client.post("/accounts/email/", {"email": new, "action_add": ""}).status_code == 302
    assert len(mailoutbox) == 1 and mailoutbox[0].to == [new]
    client.post("/accounts/email/", {"email": new, "action_primary": ""})  # not yet: it is unverified
    user.refresh_from_db()
    assert user.email == ADDRESS
    link = re.search(r"https://shop\.example\.com(/accounts/confirm-email/[^/\s]+/)", str(mailoutbox[0].body))
    assert link, mailoutbox[0].body
    assert client.post(link.group(1)).status_code == 302
    assert client.post("/accounts/email/", {"email": new, "action_primary": ""}).status_code == 302
    user.refresh_from_db()
    assert user.email == new and EmailAddress.objects.get(user=user, primary=True).email == new


@pytest.mark.django_db
def test_login_asks_for_the_code_refuses_and_counts_a_wrong_one_and_takes_a_recovery_code_once(
    client: Client, settings: Settings
) -> None:
    settings.AXES_FAILURE_LIMIT = 3  # LOGIN_FAILURE_LIMIT: wrong codes per account, as for passwords
    secret = with_totp(make_user())
    asked = log_in(client)
    assert asked.status_code == 302 and asked.headers["Location"] == "/accounts/2fa/authenticate/"
    wrong = client.post("/accounts/2fa/authenticate/", {"code": "000000" if code(secret) != "000000" else "111111"})
    assert wrong.status_code == 200 and "Incorrect code" in wrong.text
    assert "_auth_user_id" not in client.session
    right = client.post("/accounts/2fa/authenticate/", {"code": code(secret)})
    assert right.status_code == 302 and "_auth_user_id" in client.session
    client.logout()
    recovery = RecoveryCodes(Authenticator.objects.get(type="recovery_codes")).get_unused_codes()[0]
    log_in(client)
    assert client.post("/accounts/2fa/authenticate/", {"code": recovery}).status_code == 302
    client.logout()
    log_in(client)
    assert client.post("/accounts/2fa/authenticate/", {"code": recovery}).status_code == 200  # used: refused
    # Counted: the third wrong code (with the one just refused) and then even the right code is refused.
    client.post("/accounts/2fa/authenticate/", {"code": "not-a-code"})
    client.post("/accounts/2fa/authenticate/", {"code": "not-a-code"})
    refused = client.post("/accounts/2fa/authenticate/", {"code": code(secret)})
    assert refused.status_code == 200 and "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_staff_without_mfa_are_sent_to_set_it_up_before_the_admin_opens(client: Client, settings: Settings) -> None:
    settings.STAFF_MFA_REQUIRED = True
    staff = make_user(is_staff=True, is_superuser=True)
    signed_in = log_in(client, next="/admin/")
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/admin/"
    sent = client.get("/admin/")
    assert sent.status_code == 302 and sent.headers["Location"].startswith("/accounts/2fa/?next=")
    reauthenticate(client)
    assert client.get("/accounts/2fa/totp/activate/").status_code == 200  # setting it up is allowed
    with_totp(staff)
    assert client.get("/admin/").status_code == 200
    settings.STAFF_MFA_REQUIRED = False
    Authenticator.objects.all().delete()
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_the_admin_login_is_the_sites_so_a_second_factor_cannot_be_skipped(client: Client) -> None:
    with_totp(make_user(is_staff=True, is_superuser=True))
    direct = client.post("/admin/login/", {"username": LOGIN, "password": PASSWORD, "next": "/admin/"})
    assert direct.status_code == 302 and direct.headers["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in client.session  # the password alone signed nobody in
    assert log_in(client, next="/admin/").headers["Location"] == "/accounts/2fa/authenticate/"


@pytest.mark.django_db
def test_createsuperuser_makes_a_verified_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    names = ["--email", ADDRESS] + ([] if User.USERNAME_FIELD == "email" else ["--username", LOGIN])
    call_command("createsuperuser", "--noinput", *names)
    assert EmailAddress.objects.filter(email=ADDRESS, verified=True, primary=True).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/accounts/login/",
        "/accounts/signup/",
        "/accounts/email/",
        "/accounts/password/change/",
        "/accounts/sessions/",
        "/accounts/2fa/",
        "/accounts/2fa/totp/activate/",
        "/accounts/2fa/webauthn/",
        "/accounts/2fa/webauthn/add/",
    ],
)
def test_account_pages_render_and_run_no_inline_script(client: Client, path: str) -> None:
    make_user()
    log_in(client)
    reauthenticate(client)
    page = client.get(path)
    if path not in ("/accounts/login/", "/accounts/signup/"):  # those two send a signed-in user home
        assert page.status_code == 200, page.headers
    scripts = re.findall(r"<script([^>]*)>", page.text)
    # Each script is a file (under script-src 'self') or data (type=application/json, never run); no style="".
    assert all("src=" in attrs or "application/json" in attrs for attrs in scripts), scripts
    assert " style=" not in page.text and " on" + "click=" not in page.text
