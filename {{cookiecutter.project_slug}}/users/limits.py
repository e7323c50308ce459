"""Sign-in protection (README "Sign-in protection"): who a request comes from, whose login it tries, and the
password-reset limit. Failed logins are counted, and locked out, by django-axes (AXES_* in config/settings.py)."""

import hashlib
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordResetForm
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
{%- if cookiecutter.username_type == "email" %}

from .models import email_key
{%- endif %}


def client_ip(request: HttpRequest) -> str:
    """The visitor's address: nginx (or the Ingress) replaces CLIENT_IP_HEADER with it; without one in front
    (development), the connection's. Behind nginx the connection's address is nginx's, the same for everyone."""
    header = settings.CLIENT_IP_HEADER
    forwarded: str = request.META.get("HTTP_" + header.upper().replace("-", "_"), "") if header else ""
    return forwarded.strip() or str(request.META.get("REMOTE_ADDR", ""))


def login_name(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """The account a login tries, as axes counts it: one count however the name is spelled."""
    credentials = credentials or {}
    # allauth's login (every login, the admin's too) passes the address as `email` and posts the field `login`.
    name = str(credentials.get("username") or credentials.get("email") or request.POST.get("login", ""))
{%- if cookiecutter.username_type == "email" %}
    return email_key(name)  # Sam@, sam@ and ſam@ are one account
{%- else %}
    return name
{%- endif %}


def within_limit(scope: str, value: str, limit: int, window: int) -> bool:
    """Count one more for (scope, value) in a window of `window` seconds from the first; True while at most
    `limit`. The default cache holds the counts, shared by every worker and replica."""
    key = f"limit:{scope}:{hashlib.sha256(value.encode()).hexdigest()}"  # no address or IP in the cache's keys
    cache.add(key, 0, window)
    try:
        return cache.incr(key) <= limit
    except ValueError:  # expired between add and incr
        cache.set(key, 1, window)
        return True


class SiteLinkResetForm(PasswordResetForm):
    """Django's reset form with its mailed link on SITE_URL (the configured domain, HTTPS), like allauth's mails,
    instead of the request's own host and scheme."""

    def save(self, *args: Any, **kwargs: Any) -> None:
        if settings.SITE_URL:
            site = urlsplit(settings.SITE_URL)
            kwargs.update(domain_override=site.netloc, use_https=site.scheme == "https")
        super().save(*args, **kwargs)


class PasswordResetView(auth_views.PasswordResetView):
    """Django's password reset, with a limit per client and per address: past either, a 429 page says so and no
    mail is sent. The address counts whether or not it has an account, so the page tells nothing about it."""

    form_class = SiteLinkResetForm

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        if not reset_allowed(self.request, form.cleaned_data["email"]):
            return too_many(self.request, "password reset requests", settings.PASSWORD_RESET_WINDOW)
        return super().form_valid(form)


def reset_allowed(request: HttpRequest, address: str) -> bool:
    """Count one more reset request from this client and for this address; False past either limit. One count for
    both reset pages, the admin's and the site's (users/accounts.py)."""
    window = settings.PASSWORD_RESET_WINDOW
{%- if cookiecutter.username_type == "email" %}
    address = email_key(address)
{%- else %}
    address = address.casefold()
{%- endif %}
    return within_limit(
        "reset-client", client_ip(request), settings.PASSWORD_RESET_LIMIT_PER_CLIENT, window
    ) and within_limit("reset-address", address, settings.PASSWORD_RESET_LIMIT_PER_ADDRESS, window)


def too_many(request: HttpRequest, what: str, seconds: float) -> HttpResponse:
    minutes = max(1, round(seconds / 60))
    context = {"title": "Too many attempts", "what": what, "minutes": minutes}
    return render(request, "users/too_many.html", context, status=429)


def login_locked_out(
    request: HttpRequest, response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    """axes' lockout page (AXES_LOCKOUT_CALLABLE): the admin's look, a 429, and when it lifts."""
    return too_many(request, "failed sign-ins", settings.AXES_COOLOFF_TIME.total_seconds())
