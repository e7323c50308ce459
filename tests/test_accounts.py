"""Issue 23, accounts, in a real browser (Chromium through Playwright) against the live stack through nginx, deployed
as the README says (`make build-live`, `make deploy`, behind a proxy), mail sent to an SMTP server the test runs.
Sign-up, the verification mail and its link, login, TOTP with recovery codes (a wrong code refused and counted), a
passkey (Chromium's virtual authenticator) registered and used to sign in without a password, and a staff member
without a second factor kept out of the admin. Every page is checked for Content-Security-Policy violations.

The secure context WebAuthn needs: the browser visits http://localhost:LIVE_PORT, an origin browsers treat as
secure (and so does the server's WebAuthn check, python-fido2), as a TLS-terminating proxy in front of nginx would
(it says X-Forwarded-Proto: https). Only the test's own settings change for it: `localhost` joins ALLOWED_HOSTS and
http://localhost:LIVE_PORT joins CSRF_TRUSTED_ORIGINS; no certificate to trust, no edge to start (tests/test_edge.py
proves the edge's HTTPS). The relying party is then `localhost`, where the live site's is its domain. Needs a Docker
engine and chromium (skipped without them, except under CI where that is a failure)."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pyotp
import pytest

from support import (
    DOMAIN,
    E2E_VARIANTS,
    Browser,
    MailedProject,
    answers,
    bake,
    chromium,
    deploy_with_mail,
    poll,
    require_engine,
    stack_name,
)

pytestmark = pytest.mark.e2e
PASSWORD = "e2e-Accounts-Password-1"
COOL_OFF = 30  # LOGIN_COOLOFF_SECONDS: wrong MFA codes are counted per account with the login limits' numbers
SETTINGS = {"LOGIN_FAILURE_LIMIT": "3", "LOGIN_COOLOFF_SECONDS": str(COOL_OFF), "EMAIL_URL": "smtp://mail:1025"}
USER, STAFF = "ada@example.com", "staff@example.com"


class AccountsProject(MailedProject):
    @property
    def origin(self) -> str:
        return f"http://localhost:{self.live_port}"


@pytest.fixture(scope="class")
def stack(cookies_session, tmp_path_factory):
    require_engine()
    options = answers(**E2E_VARIANTS["login-limits"])  # no store, Django 6.1: the lightest stack with PostgreSQL
    path = bake(cookies_session, project_name=stack_name("E2E Accounts"), domain_name=DOMAIN, **options)
    project = AccountsProject(path)
    project.remove()
    settings = path / ".envs/prod.env"
    text = settings.read_text()
    text = text.replace(f"ALLOWED_HOSTS={DOMAIN}\n", f"ALLOWED_HOSTS={DOMAIN},localhost\n")
    text = text.replace(
        f"CSRF_TRUSTED_ORIGINS=https://{DOMAIN}\n", f"CSRF_TRUSTED_ORIGINS=https://{DOMAIN},{project.origin}\n"
    )
    assert f",{project.origin}" in text and ",localhost" in text, text
    settings.write_text(text + "".join(f"{name}={value}\n" for name, value in SETTINGS.items()))
    with deploy_with_mail(project, tmp_path_factory.mktemp("smtp")):
        yield project


def browser(project: AccountsProject, *switches: str):
    """Chromium as a visitor behind the TLS-terminating proxy: nginx believes its X-Forwarded-Proto."""
    return chromium(*switches, base_url=project.origin, extra_http_headers={"X-Forwarded-Proto": "https"})


def submit(page, field: str) -> None:
    """Press Enter in a form's field and wait for the page the form leads to."""
    with page.expect_navigation():
        page.press(f"[name={field}]", "Enter")


def log_in(page, login: str, password: str = PASSWORD, next_path: str = "") -> None:
    page.goto("/accounts/login/" + (f"?next={next_path}" if next_path else ""))
    page.fill("[name=login]", login)
    page.fill("[name=password]", password)
    submit(page, "password")


def log_out(page) -> None:
    page.goto("/accounts/logout/")
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    assert "Sign in" in page.inner_text("nav")


def path(page) -> str:
    return urlsplit(page.url).path


def visit(page, account_page: str) -> None:
    """Open a page of the account's and see it served as itself, in the site's layout."""
    response = page.goto(account_page)
    assert response.status == 200 and path(page) == account_page, (account_page, page.url)
    assert page.locator("nav").count() == 1 and page.locator("main h1").count() >= 1, account_page


def authenticate(page, code: str) -> str:
    """Answer the login's second step with a code; the page's error, if it stayed."""
    assert path(page) == "/accounts/2fa/authenticate/", page.url
    page.fill("[name=code]", code)
    submit(page, "code")
    return page.inner_text("main") if path(page) == "/accounts/2fa/authenticate/" else ""


def reauthenticate(page) -> None:
    """allauth asks for the password again before MFA changes."""
    if path(page) == "/accounts/reauthenticate/":
        page.fill("[name=password]", PASSWORD)
        submit(page, "password")


def fresh_totp(secret: str, used: set[str]) -> str:
    """The authenticator app's current code, once it is not one allauth has already taken (each is taken once)."""
    return poll(lambda: (code := pyotp.TOTP(secret).now()) not in used and code, 35, 1, "a new TOTP code")


class TestAccounts:
    totp_secret = ""
    used_codes: set[str] = set()

    def test_1_sign_up_verify_by_mail_log_in_and_turn_on_totp(self, stack):
        with browser(stack) as page:
            visit(page, "/accounts/password/reset/")  # the account pages' look and scripts under the CSP (also below)
            page.goto("/")
            with page.expect_navigation():
                page.click("nav >> text=Sign up")
            page.fill("[name=email]", USER)
            page.fill("[name=password1]", PASSWORD)
            page.fill("[name=password2]", PASSWORD)
            submit(page, "password2")
            assert path(page) == "/accounts/confirm-email/", page.url
            mail = poll(lambda: stack.mails(USER), 60, 2, "the verification mail")[-1]
            body = mail.get_body(("plain",)).get_content()
            link = re.search(r"https://\S+/accounts/confirm-email/\S+/", body)
            # The configured domain over HTTPS, not the address the request came in on (localhost here).
            assert link and link.group(0).startswith(f"https://{DOMAIN}/"), body
            page.context.clear_cookies()  # followed from the mail, without the sign-up's session
            log_in(page, USER)
            assert path(page) == "/accounts/confirm-email/", "no login before the address is verified"
            page.goto(urlsplit(link.group(0)).path)
            with page.expect_navigation():
                page.click("main form button[type=submit]")
            if "Sign out" not in page.inner_text("nav"):  # allauth finishes a login held for the address itself
                log_in(page, USER)
            assert path(page) == "/" and "Sign out" in page.inner_text("nav"), page.url
            page.goto("/accounts/2fa/totp/activate/")
            reauthenticate(page)
            assert path(page) == "/accounts/2fa/totp/activate/", page.url
            TestAccounts.totp_secret = page.input_value("#authenticator_secret")
            code = fresh_totp(self.totp_secret, self.used_codes)
            self.used_codes.add(code)
            page.fill("[name=code]", code)
            submit(page, "code")
            page.goto("/accounts/2fa/recovery-codes/")
            reauthenticate(page)
            TestAccounts.recovery_codes = page.input_value("#recovery_codes").split()
            assert len(self.recovery_codes) == 10, self.recovery_codes
            for account_page in (
                "/accounts/email/",
                "/accounts/password/change/",
                "/accounts/sessions/",
                "/accounts/2fa/",
            ):
                visit(page, account_page)
            assert page.csp_violations == []

    def test_2_login_asks_for_the_code_refuses_and_counts_wrong_ones_and_takes_a_recovery_code_once(self, stack):
        assert self.totp_secret, "test_1 turns TOTP on"
        recovery = self.recovery_codes[0]
        with browser(stack) as page:
            log_in(page, USER)
            wrong = "000000" if pyotp.TOTP(self.totp_secret).now() != "000000" else "111111"
            errors = [authenticate(page, wrong) for _ in range(int(SETTINGS["LOGIN_FAILURE_LIMIT"]))]
            assert all("Incorrect code" in error for error in errors), errors
            # Counted: past LOGIN_FAILURE_LIMIT wrong codes even a right one is refused until the cool-off ends.
            locked_at = time.monotonic()
            refused = authenticate(page, recovery)
            assert "Too many failed login attempts" in refused, refused
            poll(lambda: authenticate(page, recovery) == "", COOL_OFF + 30, 5, "the code count to cool off")
            lifted = time.monotonic() - locked_at
            print(f"\n[e2e] the 4th code was refused; a right one worked again {lifted:.0f}s later")
            assert path(page) == "/" and "Sign out" in page.inner_text("nav")
            log_out(page)
            log_in(page, USER)
            assert "Incorrect code" in authenticate(page, recovery), "a recovery code works once"
            code = fresh_totp(self.totp_secret, self.used_codes)
            self.used_codes.add(code)
            assert authenticate(page, code) == "" and path(page) == "/"
            assert page.csp_violations == []

    def test_3_a_passkey_is_registered_and_signs_in_without_a_password(self, stack):
        with browser(stack) as page:
            cdp = page.context.new_cdp_session(page)
            cdp.send("WebAuthn.enable")
            options = {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
            authenticator = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})["authenticatorId"]
            log_in(page, USER)
            authenticate(page, fresh_totp(self.totp_secret, self.used_codes))
            assert path(page) == "/", page.url
            page.goto("/accounts/2fa/webauthn/add/")
            reauthenticate(page)
            assert path(page) == "/accounts/2fa/webauthn/add/", page.url
            page.fill("[name=name]", "e2e virtual key")
            page.check("[name=passwordless]")
            with page.expect_navigation():
                page.click("#mfa_webauthn_add")
            credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
            assert len(credentials) == 1 and credentials[0]["isResidentCredential"], credentials
            page.goto("/accounts/2fa/webauthn/")
            assert "e2e virtual key" in page.inner_text("main")
            log_out(page)
            page.goto("/accounts/login/")
            with page.expect_navigation(url=re.compile(r"localhost:\d+/$")):
                page.click("#passkey_login")
            assert "Sign out" in page.inner_text("nav"), "signed in with the passkey alone"
            assert page.csp_violations == []

    def test_4_staff_without_a_second_factor_are_sent_to_set_one_up_before_the_admin(self, stack):
        created = stack.run_once(
            "-e", f"DJANGO_SUPERUSER_PASSWORD={PASSWORD}", "app", "python", "manage.py", "createsuperuser",
            "--noinput", "--email", STAFF,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        # The admin's own login form with the right password: no longer a way in (it was, before allauth).
        visitor = Browser(stack.live_port)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', visitor.get("/accounts/login/").text)[1]
        form = {"csrfmiddlewaretoken": token, "username": STAFF, "password": PASSWORD, "next": "/admin/"}
        direct = visitor.post("/admin/login/", form)
        assert direct.status_code == 302 and direct.headers["Location"].startswith("/accounts/login/"), direct
        assert visitor.get("/admin/").status_code == 302
        with browser(stack) as page:
            page.goto("/admin/")
            assert path(page) == "/accounts/login/", page.url
            page.fill("[name=login]", STAFF)
            page.fill("[name=password]", PASSWORD)
            submit(page, "password")
            assert path(page) == "/accounts/2fa/", page.url
            assert "Site administration" not in page.content()
            assert "Staff accounts need a second factor" in page.inner_text("main")
            page.goto("/admin/")
            assert path(page) == "/accounts/2fa/", "the admin stays closed"
            page.goto("/accounts/2fa/totp/activate/")
            reauthenticate(page)
            code = fresh_totp(page.input_value("#authenticator_secret"), set())
            page.fill("[name=code]", code)
            submit(page, "code")
            page.goto("/admin/")
            assert path(page) == "/admin/" and "Site administration" in page.content(), page.url
            assert page.csp_violations == []
