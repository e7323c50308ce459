"""The API (README "The API"): who may call it, what it answers, and its token from allauth's headless login."""

import time
from collections.abc import Iterator
from typing import Any

import pytest
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from {{ cookiecutter.project_slug }}.models import Document

from .factories import PASSWORD, DocumentFactory, UserFactory

LOGIN_FIELD = "{{ cookiecutter.username_type }}"  # email or username
ITEMS = "{{ 'results' if cookiecutter.api == 'drf' else 'items' }}"  # the page's list of documents


@pytest.fixture(autouse=True)
def no_counts_left(settings: Any) -> Iterator[None]:
    """Throttling counts live in the cache: each test starts with none."""
    cache.clear()
    yield
    cache.clear()


def make_user(name: str, **extra: Any) -> Any:
    login = {"username": name} if LOGIN_FIELD == "username" else {}
    return UserFactory.create(**login, email=f"{name}@example.com", **extra)


def token_for(client: Client, user: Any) -> str:
    """A session token from allauth's headless login (the app client), as a script or a mobile app gets it."""
    login = {LOGIN_FIELD: getattr(user, LOGIN_FIELD), "password": PASSWORD}
    response = client.post("/_allauth/app/v1/auth/login", login, content_type="application/json")
    assert response.status_code == 200, response.content
    return str(response.json()["meta"]["session_token"])


def api(token: str) -> Client:
    return Client(headers={"X-Session-Token": token})


def document(title: str, owner: Any = None) -> Document:
    return DocumentFactory.create(title=title, owner=owner)


@pytest.mark.django_db
def test_without_credentials_every_call_is_a_json_401(client: Client) -> None:
    for path in ("/api/documents/", "/api/me/"):
        response = client.get(path)
        assert response.status_code == 401 and response["Content-Type"].startswith("application/json"), path


@pytest.mark.django_db
def test_a_token_from_the_headless_login_reads_the_api_and_a_wrong_one_is_a_401(client: Client) -> None:
    ada = make_user("ada")
    token = token_for(client, ada)
    me = api(token).get("/api/me/")
    assert me.status_code == 200 and me.json()["email"] == "ada@example.com"
    assert api(token + "x").get("/api/me/").status_code == 401
    wrong = client.post(
        "/_allauth/app/v1/auth/login",
        {LOGIN_FIELD: getattr(ada, LOGIN_FIELD), "password": "wrong"},
        content_type="application/json",
    )
    assert wrong.status_code == 400 and "session_token" not in wrong.content.decode()


@pytest.mark.django_db
def test_a_token_from_a_login_still_waiting_on_a_stage_opens_nothing(client: Client, settings: Any) -> None:
    """The headless login hands out a token before its last stage (the second factor with MFA; here a verified
    address, the same machinery): until the stage is passed the token is refused, so a password alone gets in
    nowhere."""
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    settings.HEADLESS_ONLY = True  # the verification mail links to an app's page, not to allauth's own pages
    settings.HEADLESS_FRONTEND_URLS = {"account_confirm_email": "https://app.example.com/verify/{key}"}
    ada = make_user("ada")
    login = {LOGIN_FIELD: getattr(ada, LOGIN_FIELD), "password": PASSWORD}
    pending = client.post("/_allauth/app/v1/auth/login", login, content_type="application/json")
    assert pending.status_code == 401, pending.content
    flows = pending.json()["data"]["flows"]
    assert any(flow.get("is_pending") for flow in flows), flows
    token = pending.json()["meta"]["session_token"]
    assert api(token).get("/api/me/").status_code == 401
    assert api(token).get("/api/documents/").status_code == 401


@pytest.mark.django_db
def test_with_an_authenticator_the_token_opens_the_api_only_after_its_code(client: Client) -> None:
    """MFA: the headless login of an account with an authenticator app stops at its code; the token opens nothing
    until the right code is given, and a wrong one is refused. A script cannot skip the second factor."""
    ada = make_user("ada")
    secret: str = generate_totp_secret()
    TOTP.activate(ada, secret)
    login = {LOGIN_FIELD: getattr(ada, LOGIN_FIELD), "password": PASSWORD}
    pending = client.post("/_allauth/app/v1/auth/login", login, content_type="application/json")
    assert pending.status_code == 401, pending.content
    stages = [flow["id"] for flow in pending.json()["data"]["flows"] if flow.get("is_pending")]
    assert stages == ["mfa_authenticate"], pending.content
    token = pending.json()["meta"]["session_token"]
    assert api(token).get("/api/me/").status_code == 401

    def authenticate(code: str) -> Any:
        path, headers = "/_allauth/app/v1/auth/2fa/authenticate", {"X-Session-Token": token}
        return client.post(path, {"code": code}, content_type="application/json", headers=headers)

    assert authenticate("not-a-code").status_code == 400
    assert api(token).get("/api/me/").status_code == 401
    done = authenticate(str(format_hotp_value(hotp_value(secret, int(time.time()) // 30))))
    assert done.status_code == 200, done.content
    assert api(done.json()["meta"]["session_token"]).get("/api/me/").status_code == 200


@pytest.mark.django_db
def test_failed_token_logins_lock_out_their_account_only(settings: Any) -> None:
    """The headless login is counted by django-axes like the admin's, per account: failures on one account from
    many addresses lock it, and never another (they were all counted for an empty name, which locked everyone)."""
    settings.AXES_ENABLED = True
    ada, bob = make_user("ada"), make_user("bob")

    def login(user: Any, password: str, address: str) -> int:
        visitor = Client(headers={"X-Real-IP": address})
        credentials = {LOGIN_FIELD: getattr(user, LOGIN_FIELD), "password": password}
        return visitor.post("/_allauth/app/v1/auth/login", credentials, content_type="application/json").status_code

    failures = [login(bob, "wrong", f"203.0.113.{n}") for n in range(settings.AXES_FAILURE_LIMIT)]
    assert failures == [400] * (settings.AXES_FAILURE_LIMIT - 1) + [429], failures
    # Refused now, the right password too: axes' 429, or allauth's own limit on failed logins (a 400 that says so).
    assert login(bob, PASSWORD, "198.51.100.1") in (400, 429)
    assert login(ada, PASSWORD, "198.51.100.1") == 200


@pytest.mark.django_db
def test_the_list_is_paginated_by_twenty(client: Client) -> None:
    for number in range(25):
        document(f"doc{number:02d}")
    caller = api(token_for(client, make_user("ada")))
    first = caller.get("/api/documents/").json()
    assert first["count"] == 25 and len(first[ITEMS]) == 20
    assert first[ITEMS][0]["title"] == "doc24"  # newest first
    second = caller.get("/api/documents/?page=2").json()
    assert [item["title"] for item in second[ITEMS]] == [f"doc{number:02d}" for number in range(4, -1, -1)]


@pytest.mark.django_db
def test_an_upload_through_the_api_is_owned_and_checked_like_the_admins(client: Client) -> None:
    ada = make_user("ada")
    caller = api(token_for(client, ada))
    upload = SimpleUploadedFile("notes.txt", b"hello", content_type="text/plain")
    created = caller.post("/api/documents/", {"title": "Notes", "file": upload})
    assert created.status_code == 201, created.content
    assert created.json()["owner"] == ada.pk and "/media/documents/" in created.json()["file"]
    assert Document.objects.get().owner == ada
    for name in ("page.html", "drawing.svg", "noextension"):
        attack = SimpleUploadedFile(name, b"<script>alert(1)</script>", content_type="text/html")
        refused = caller.post("/api/documents/", {"title": "Attack", "file": attack})
        assert refused.status_code in (400, 422) and "not allowed" in refused.content.decode(), name
    assert Document.objects.count() == 1


@pytest.mark.django_db
def test_only_the_owner_or_staff_change_or_delete_a_document(client: Client) -> None:
    ada, bob, staff = make_user("ada"), make_user("bob"), make_user("eve", is_staff=True)
    mine, admins = document("mine", owner=ada), document("admins")
    as_ada, as_bob, as_staff = (api(token_for(client, user)) for user in (ada, bob, staff))
    rename = {"title": "renamed"}

    def patch(caller: Client, path: str) -> Any:
        return caller.patch(path, rename, content_type="application/json")

    assert as_bob.get(f"/api/documents/{mine.pk}/").status_code == 200  # every signed-in user reads
    assert patch(as_bob, f"/api/documents/{mine.pk}/").status_code == 403
    assert as_bob.delete(f"/api/documents/{mine.pk}/").status_code == 403
    assert patch(as_ada, f"/api/documents/{admins.pk}/").status_code == 403  # no owner: staff only
    changed = patch(as_ada, f"/api/documents/{mine.pk}/")
    assert changed.status_code == 200 and changed.json()["title"] == "renamed", changed.content
    assert as_staff.delete(f"/api/documents/{mine.pk}/").status_code == 204
    assert as_ada.get(f"/api/documents/{mine.pk}/").status_code == 404
    assert list(Document.objects.values_list("title", flat=True)) == ["admins"]


@pytest.mark.django_db
def test_the_profile_changes_names_only(client: Client) -> None:
    ada = make_user("ada")
    caller = api(token_for(client, ada))
    changed = caller.patch("/api/me/", {"first_name": "Ada", "is_staff": True}, content_type="application/json")
    assert changed.status_code == 200 and changed.json()["first_name"] == "Ada"
    ada.refresh_from_db()
    assert ada.first_name == "Ada" and not ada.is_staff
    assert caller.patch("/api/me/", {"first_name": 123}, content_type="application/json").status_code in (400, 422)


@pytest.mark.django_db
def test_the_site_session_works_with_csrf_and_without_it_a_write_is_refused() -> None:
    ada = make_user("ada")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(ada)
    assert browser.get("/api/me/").status_code == 200
    refused = browser.patch("/api/me/", {"first_name": "X"}, content_type="application/json")
    assert refused.status_code == 403 and refused["Content-Type"].startswith("application/json")


@pytest.mark.django_db
def test_errors_are_json_never_a_page(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = client.get("/api/no-such-thing/")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}
    caller = api(token_for(client, make_user("ada")))

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Document.objects, "order_by", broken)
    caller.raise_request_exception = False
    failed = caller.get("/api/documents/")
    assert failed.status_code == 500 and failed.json() == {"detail": "Internal Server Error"}
    assert "a bug" not in failed.content.decode()


@pytest.mark.django_db
def test_the_schema_and_the_docs_are_served_from_this_site(client: Client) -> None:
    schema = client.get("/api/schema/", headers={"Accept": "application/json"})
    assert schema.status_code == 200
    spec = schema.json()
    assert spec["openapi"].startswith("3.") and "/api/documents/" in spec["paths"]
    schemes = spec["components"]["securitySchemes"].values()
    assert {"type": "apiKey", "in": "header", "name": "X-Session-Token"} in [dict(s) for s in schemes]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert '<script src="/static/' in page and "cdn" not in page.lower(){%- if cookiecutter.api == "drf" %}


@pytest.mark.django_db
def test_a_profile_with_blank_names_matches_the_schema(client: Client) -> None:
    """A new user's names are blank: the 200 the schema promises must take "" (schemathesis found it refused)."""
    from jsonschema import Draft4Validator

    spec = client.get("/api/schema/", headers={"Accept": "application/json"}).json()
    answer = spec["paths"]["/api/me/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    profile = spec["components"]["schemas"][answer["$ref"].rsplit("/", 1)[-1]]
    me = api(token_for(client, make_user("ada"))).get("/api/me/").json()
    assert me["first_name"] == "" and me["last_name"] == ""
    errors = [error.message for error in Draft4Validator(profile).iter_errors(me)]
    assert errors == []
{%- endif %}


@pytest.mark.django_db
def test_cors_is_off_unless_origins_are_listed(client: Client, settings: Any) -> None:
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}
    assert "Access-Control-Allow-Origin" not in client.options("/api/documents/", headers=preflight)
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    allowed = client.options("/api/documents/", headers=preflight)
    assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "x-session-token" in allowed["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Origin" not in client.options("/admin/", headers=preflight)


@pytest.mark.django_db
def test_calls_past_the_rates_are_throttled_with_a_429(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two calls a minute here (API_THROTTLE_ANON and API_THROTTLE_USER set the real rates): the third is a 429,
    per visitor on what is open to anyone (the schema) and per user on the rest."""
{%- if cookiecutter.api == "drf" %}
    from {{ cookiecutter.project_slug }}.api.drf_auth import AnonThrottle, UserThrottle

    monkeypatch.setattr(AnonThrottle, "rate", "2/min", raising=False)
    monkeypatch.setattr(UserThrottle, "rate", "2/min", raising=False)
{%- else %}
    from {{ cookiecutter.project_slug }}.api.ninja_api import api as ninja_api

    throttles = ninja_api.throttle
    assert isinstance(throttles, list)
    for throttle in throttles:
        monkeypatch.setattr(throttle, "num_requests", 2)
{%- endif %}
    visitor = [client.get("/api/schema/", headers={"X-Real-IP": "203.0.113.7"}).status_code for _ in range(3)]
    assert visitor == [200, 200, 429]
    assert client.get("/api/schema/", headers={"X-Real-IP": "198.51.100.9"}).status_code == 200  # another visitor
    ada, bob = make_user("ada"), make_user("bob")
    as_ada, as_bob = api(token_for(client, ada)), api(token_for(client, bob))
    calls = [as_ada.get("/api/me/", headers={"X-Real-IP": f"192.0.2.{n}"}) for n in range(3)]
    assert [call.status_code for call in calls] == [200, 200, 429]  # per user, whatever the address
    assert calls[-1]["Content-Type"].startswith("application/json") and int(calls[-1]["Retry-After"]) > 0
    assert as_bob.get("/api/me/").status_code == 200
