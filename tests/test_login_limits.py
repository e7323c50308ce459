"""Issue 20 (Medium 1 and 2), sign-in protection on the live stack: deployed as the README says (`make build-live`,
`make deploy`, behind a proxy: this test is the proxy, so nginx believes the client address it names in
X-Forwarded-For), PostgreSQL, several gunicorn workers and no key-value store (the counts live in the database).
Repeated wrong logins lock the account out with a 429 that the right password cannot pass, the lock lifts after
the cool-off (a short one here), and the password-reset form stops sending mail past its limit. Its own project
name ("E2E Limits ..."). Needs a Docker engine (skipped without one, except under CI where that is a failure)."""

from __future__ import annotations

import time

import pytest

from support import (
    DOMAIN,
    E2E_VARIANTS,
    Browser,
    MailedProject,
    Project,
    answers,
    bake,
    deploy_with_mail,
    poll,
    require_engine,
    stack_name,
)

pytestmark = pytest.mark.e2e
PASSWORD = "e2e-Password-1"
COOL_OFF = 20  # seconds, LOGIN_COOLOFF_SECONDS
LIMITS = {
    "LOGIN_FAILURE_LIMIT": "3",
    "LOGIN_COOLOFF_SECONDS": str(COOL_OFF),
    "PASSWORD_RESET_LIMIT_PER_CLIENT": "3",
    "PASSWORD_RESET_LIMIT_PER_ADDRESS": "2",
    "EMAIL_URL": "smtp://mail:1025",
}
ATTACKER, USER = "203.0.113.7", "198.51.100.9"


@pytest.fixture(scope="module")
def stack(cookies_session, tmp_path_factory):
    require_engine()
    options = answers(**E2E_VARIANTS["login-limits"])
    path = bake(cookies_session, project_name=stack_name("E2E Limits"), domain_name=DOMAIN, **options)
    project = MailedProject(path)
    project.remove()
    settings = path / ".envs/prod.env"
    settings.write_text(settings.read_text() + "".join(f"{name}={value}\n" for name, value in LIMITS.items()))
    with deploy_with_mail(project, tmp_path_factory.mktemp("smtp")):
        yield project


def client(project: Project, address: str) -> Browser:
    """A visitor from this address (nginx takes it from X-Forwarded-For: the test is a trusted proxy)."""
    browser = Browser(project.live_port)
    browser.session.headers["X-Forwarded-For"] = address
    return browser


def sign_in(browser: Browser, name: str, password: str):
    # The site's login (allauth's; the admin's sends there since issue 23): the same counts, pages and answers.
    return browser.post_form("/accounts/login/", {"login": name, "password": password, "next": "/admin/"})


def manage(project: Project, *args: str):
    return project.run_once(
        "-e", f"DJANGO_SUPERUSER_PASSWORD={PASSWORD}", "app", "python", "manage.py", *args, check=False
    )


def test_1_a_look_alike_address_is_the_same_account_on_postgres(stack):
    created = manage(stack, "createsuperuser", "--noinput", "--email", "Sam@example.com")
    assert created.returncode == 0, created.stderr
    # A second account for the long s (ſ upper-cases to S), as the manager makes it for a sign-up or an import:
    # PostgreSQL's lower() told them apart, its upper() did not, and both logins failed with a 500.
    second = manage(
        stack, "shell", "-c", "from users.models import User; User.objects.create_user('\\u017fam@example.com')"
    )
    logins = [
        sign_in(client(stack, USER), spelling, PASSWORD)
        for spelling in ("Sam@example.com", "\u017fam@example.com", "SAM@example.com")
    ]
    assert [login.status_code for login in logins] == [302, 302, 302], (second.stderr[-2000:], logins)
    assert {login.headers["Location"] for login in logins} == {"/admin/"}
    assert second.returncode != 0 and "IntegrityError" in second.stderr, second.stdout + second.stderr
    refused = manage(stack, "createsuperuser", "--noinput", "--email", "\u017fam@example.com")
    assert refused.returncode != 0 and "already taken" in refused.stderr, refused.stdout + refused.stderr


def test_2_wrong_logins_lock_the_account_out_until_the_cool_off_lifts(stack):
    created = manage(stack, "createsuperuser", "--noinput", "--email", "ada@example.com")
    assert created.returncode == 0, created.stderr
    attacker = client(stack, ATTACKER)
    answers = [sign_in(attacker, "ada@example.com", f"wrong-{n}").status_code for n in range(4)]
    locked_at = time.monotonic()
    assert answers == [200, 200, 429, 429], answers
    page = sign_in(attacker, "ada@example.com", "wrong")
    assert page.status_code == 429 and "too many failed sign-ins" in page.text, page.text[:1000]
    # The account is locked, not only the attacker's address: its owner's right password is refused too.
    assert sign_in(client(stack, USER), "Ada@example.com", PASSWORD).status_code == 429
    # The attacker keeps trying: that does not push the end of the lock back.
    while time.monotonic() - locked_at < COOL_OFF - 4:
        assert sign_in(attacker, "ada@example.com", "wrong").status_code == 429
        time.sleep(2)
    owner = client(stack, USER)
    poll(lambda: sign_in(owner, "ada@example.com", PASSWORD).status_code == 302, 30, 2, "the lock to lift")
    lifted = time.monotonic() - locked_at
    print(f"\n[e2e] locked at the 3rd wrong password; the right one worked again {lifted:.0f}s later")
    assert COOL_OFF - 5 <= lifted <= COOL_OFF + 25


def test_3_the_password_reset_stops_sending_mail_past_its_limit(stack):
    before = len(stack.mails())
    answers = [
        client(stack, f"192.0.2.{n}").post_form("/admin/password-reset/", {"email": "ada@example.com"})
        for n in range(1, 5)
    ]
    assert [answer.status_code for answer in answers] == [302, 302, 429, 429]
    assert "too many password reset requests" in answers[-1].text
    # Each mail is sent within its request (no Celery here), and all four requests have been answered: once the
    # catcher has logged two, a third would be there too.
    poll(lambda: len(stack.mails()) >= before + 2, 30, what="the two reset mails")
    assert len(stack.mails()) == before + 2  # four requests, two mails
    # Per client too: one address asks for three other addresses' resets, then is refused for a fourth.
    visitor = client(stack, "192.0.2.99")
    asked = [
        visitor.post_form("/admin/password-reset/", {"email": f"user{n}@example.com"}).status_code for n in range(4)
    ]
    assert asked == [302, 302, 302, 429]
