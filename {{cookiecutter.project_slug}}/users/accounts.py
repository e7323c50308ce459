"""Accounts (django-allauth, README "Accounts"): what the project adds to allauth. Mail links on the site's own
address, one limiter for wrong passwords (axes), the client address as users/limits.py reads it, staff sent to
set up a second factor, and superusers made on the server with their address already verified."""

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from allauth.account.adapter import DefaultAccountAdapter
{%- if cookiecutter.username_type == "email" %}
from allauth.account.forms import LoginForm as AllauthLoginForm
{%- endif %}
from allauth.account.models import EmailAddress
from allauth.account.views import PasswordResetView as AllauthPasswordResetView
from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode

from .limits import client_ip, reset_allowed, too_many
{%- if cookiecutter.username_type == "email" %}
from .models import email_key
{%- endif %}


class AccountAdapter(DefaultAccountAdapter):
    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        # Wrong passwords are counted and locked out by axes (AXES_* in config/settings.py), inside authenticate():
        # allauth's second count (login_failed) would lock out at other numbers with another page.
        self._login_failed_rl_usage = None

    def get_client_ip(self, request: HttpRequest) -> str:
        return client_ip(request)  # the address axes and the reset limit count by

    def site_link(self, path: str, request: HttpRequest | None) -> str:
        """An absolute link for a mail: SITE_URL (the configured domain, HTTPS) on the live site, the request's
        own origin in development."""
        if settings.SITE_URL:
            return settings.SITE_URL + path
        return request.build_absolute_uri(path) if request is not None else path

    def get_email_confirmation_url(self, request: HttpRequest, emailconfirmation: Any) -> str:
        return self.site_link(reverse("account_confirm_email", args=[emailconfirmation.key]), request)

    def get_reset_password_from_key_url(self, key: str) -> str:
        path = reverse("account_reset_password_from_key", kwargs={"uidb36": "UID", "key": "KEY"})
        return self.site_link(path.replace("UID-KEY", quote(key)), self.request)
{% if cookiecutter.username_type == "email" %}

class LoginForm(AllauthLoginForm):
    """allauth's login form, with the address as its key (users.models.email_key): every spelling of an address
    (Sam@, SAM@, the long s of ſam@) is the one account, whose address allauth then finds verified. Without it a
    look-alike spelling signed in by password, then was held for verification, and the verification mail went to
    the spelling typed: a 500 where the SMTP server refused that address."""

    def clean_login(self) -> str:
        return email_key(super().clean_login())
{% endif %}

class PasswordResetView(AllauthPasswordResetView):
    """allauth's reset page (config/urls.py), limited by the project's reset limit (users/limits.py): one count per
    client and per address for it and the admin's reset page, the same 429 page past either."""

    def form_valid(self, form: Any) -> HttpResponse:
        if not reset_allowed(self.request, form.cleaned_data["email"]):
            return too_many(self.request, "password reset requests", settings.PASSWORD_RESET_WINDOW)
        response: HttpResponse = super().form_valid(form)
        return response


class StaffMFAMiddleware:
    """With STAFF_MFA_REQUIRED, a staff member without a second factor (an authenticator app or a passkey) is
    sent to the MFA page from every page but allauth's own (where they set one up, verify an address, sign out)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        user = getattr(request, "user", None)
        if not settings.STAFF_MFA_REQUIRED or user is None or not user.is_authenticated or not user.is_staff:
            return None
        if view_func.__module__.startswith("allauth.") or is_mfa_enabled(user, ["totp", "webauthn"]):
            return None
        messages.warning(request, "Staff accounts need a second factor: add an authenticator app or a passkey.")
        return HttpResponseRedirect(reverse("mfa_index") + "?" + urlencode({"next": request.get_full_path()}))


def verify_superuser_address(sender: type, instance: AbstractBaseUser, created: bool, **kwargs: Any) -> None:
    """A superuser made with createsuperuser on the server has the address its maker typed there: verified, so
    the first login is not held for a mail (post_save of the user model, connected in users/apps.py)."""
    email = getattr(instance, "email", "")
    if created and getattr(instance, "is_superuser", False) and email and not kwargs.get("raw"):
        EmailAddress.objects.get_or_create(
            user=instance, email=email.lower(), defaults={"verified": True, "primary": True}
        )
