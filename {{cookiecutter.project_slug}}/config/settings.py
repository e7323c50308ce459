"""Settings for {{ cookiecutter.project_name }}: one module, every value read from the environment.

The same code runs on a laptop, in development containers and in production; only the
environment differs (see .envs/). With DEBUG off the settings refuse to start unless the
values production needs are set, so a forgotten variable fails loudly instead of silently.
"""

from __future__ import annotations

import os
from datetime import timedelta
from importlib.util import find_spec
from pathlib import Path
from typing import {% if cookiecutter.use_celery == "y" %}TYPE_CHECKING, {% endif %}Any
from urllib.parse import unquote, urlsplit

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from secret_files import SecretFileError, load_secret_files  # Docker Swarm: NAME_FILE secrets

BASE_DIR = Path(__file__).resolve().parent.parent

# ---- Docker Swarm (compose.swarm.yaml): secrets from files, before anything reads the environment.
# NAME_FILE=/run/secrets/x sets an unset NAME from that file (secret_files.py); a missing file stops here.
try:
    load_secret_files()
except SecretFileError as exc:
    raise ImproperlyConfigured(str(exc)) from None
# ---- end of Docker Swarm's block

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    """Parse a boolean strictly: "0"/"false" are False, and a typo is an error, not True."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use 1/0, true/false, yes/no or on/off.")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None


def env_list(name: str, default: str = "") -> list[str]:
    """A comma-separated list: "a.example, b.example" -> ["a.example", "b.example"]."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def require(name: str, hint: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(f"{name} is not set, and DEBUG is off. {hint}")
    return value


# manage.py turns DEBUG on for local work; servers (gunicorn) and the image default to off.
DEBUG = env_bool("DEBUG", False)

if DEBUG:
    SECRET_KEY = os.environ.get("SECRET_KEY") or "django-insecure-development-only-key"
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS") or ["localhost", "127.0.0.1", "[::1]"]
else:
    SECRET_KEY = require("SECRET_KEY", "Set it in .envs/prod.env (the template generated one for you).")
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured(
            "ALLOWED_HOSTS is not set, and DEBUG is off. Set it to the site's domain names, comma-separated."
        )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "users",
    "{{ cookiecutter.project_slug }}",
]

MIDDLEWARE = [
    # Outermost: the image tag on every response (releases, README "Releasing without downtime").
    "{{ cookiecutter.project_slug }}.health.VersionHeaderMiddleware",
    # First, so probes are answered before host validation or the HTTPS redirect.
    "{{ cookiecutter.project_slug }}.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
{%- if cookiecutter.django_version == "5.2" %}
    "csp.middleware.CSPMiddleware",
{%- else %}
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
{%- endif %}
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns axes' lockout of a login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: DATABASE_URL (postgres://user:password@host:5432/name); without it, SQLite in the
# project folder, so `python manage.py migrate && python manage.py runserver` works without Docker.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        # Reuse connections, but test them first: a restarted database leaves no dead ones behind.
        conn_max_age=env_int("CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Fail fast (and let /readyz answer 503) instead of hanging when the database is unreachable.
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int("DATABASE_CONNECT_TIMEOUT", 5)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The project's own user model (users/), in place from the first migration: swapping it in later is hard.
AUTH_USER_MODEL = "users.User"
{% if cookiecutter.key_value_store != "none" %}
# {{ cookiecutter.key_value_store | capitalize }}: cache{% if cookiecutter.use_celery == "y" %} and Celery broker{% endif %}. Optional for local work, required in production.
# It speaks the Redis protocol, so the URL is redis:// and Django's Redis cache backend talks to it.
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
if not REDIS_URL and not DEBUG:
    require("REDIS_URL", "Point it at the {{ cookiecutter.key_value_store | capitalize }} service, e.g. REDIS_URL=redis://{{ cookiecutter.key_value_store }}:6379/0.")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
{% else %}
# No key-value store: the cache is a database table (created by migrate: the project app's migration 0003), so what
# it holds, such as the password-reset counts, is shared by every worker and replica (a per-process cache is not).
# Room for many entries: at MAX_ENTRIES it deletes a third of them, counts included (a flood could reset them).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "django_cache",
        "OPTIONS": {"MAX_ENTRIES": 100_000},
    }
}
{% endif %}
{%- if cookiecutter.use_celery == "y" %}
# Celery. Without REDIS_URL (local work without Docker) tasks run in-process, eagerly.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_STORE_EAGER_RESULT = True
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery beat (the `beat` service, one instance only) sends these tasks to the workers on schedule. Its
# scheduler (config/celery.py) wakes at least every 30 s and touches a file its healthcheck reads.
CELERY_BEAT_SCHEDULER = "config.celery:HeartbeatScheduler"
CELERY_BEAT_MAX_LOOP_INTERVAL = 30


if TYPE_CHECKING:
    from celery.schedules import crontab


def env_schedule(name: str, default: str) -> int | crontab:
    """A cron expression in UTC ("0 3 * * *": daily at 03:00), or a number of seconds ("60"). Prefer cron: an
    interval counts from beat's start, and beat forgets its state when its container is replaced."""
    from celery.schedules import crontab

    raw = os.environ.get(name, "").strip() or default
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    error = ImproperlyConfigured(
        f"{name}={raw!r} is neither a cron expression (minute hour day month weekday, e.g. '0 3 * * *') "
        "nor a number of seconds."
    )
    if len(raw.split()) != 5:
        raise error
    minute, hour, day_of_month, month_of_year, day_of_week = raw.split()
    try:
        return crontab(minute, hour, day_of_month=day_of_month, month_of_year=month_of_year, day_of_week=day_of_week)
    except ValueError:
        raise error from None


CELERY_BEAT_SCHEDULE = {
    # Deletes expired sessions (Django's clearsessions), daily at 03:00 UTC unless CLEAR_SESSIONS_SCHEDULE says.
    "clear-expired-sessions": {
        "task": "{{ cookiecutter.project_slug }}.tasks.clear_expired_sessions",
        "schedule": env_schedule("CLEAR_SESSIONS_SCHEDULE", "0 3 * * *"),
    },
}
{% endif %}
# Email. With DEBUG on every mail is printed to the console (`docker compose logs app`): nothing is ever sent
# from development. The live site sends through the SMTP server in EMAIL_URL: smtp+tls://user:password@host:587
# (STARTTLS), smtps://user:password@host:465 (TLS from the start) or smtp://host:25 (a relay you trust); a
# password with @ : / in it is percent-encoded. The site starts without EMAIL_URL (deploy before the mail
# provider is ready), and each mail it then tries to send (verification, reset, error report) fails loudly.
EMAIL_SCHEMES = {"smtp": (25, False, False), "smtp+tls": (587, True, False), "smtps": (465, False, True)}
EMAIL_URL = os.environ.get("EMAIL_URL", "").strip()
_mailer: dict[str, Any] = {"BACKEND": "config.mail.UnconfiguredEmailBackend", "OPTIONS": {}}
if DEBUG:
    _mailer["BACKEND"] = "django.core.mail.backends.console.EmailBackend"
elif EMAIL_URL:
    _email = urlsplit(EMAIL_URL)
    try:
        _port = _email.port
    except ValueError:
        _port, _email = None, _email._replace(netloc="")
    if _email.scheme not in EMAIL_SCHEMES or not _email.hostname:
        raise ImproperlyConfigured(
            f"EMAIL_URL ({_email.scheme or 'no scheme'}://...) is not an SMTP URL: use "
            "smtp+tls://user:password@host:587, smtps://user:password@host:465 or smtp://host:25."
        )
    _default_port, _tls, _ssl = EMAIL_SCHEMES[_email.scheme]
    _mailer["BACKEND"] = "django.core.mail.backends.smtp.EmailBackend"
    _mailer["OPTIONS"] = {
        "host": _email.hostname,
        "port": _port or _default_port,
        "username": unquote(_email.username or ""),
        "password": unquote(_email.password or ""),
        "use_tls": _tls,
        "use_ssl": _ssl,
        "timeout": env_int("EMAIL_TIMEOUT", 10),
    }
{%- if cookiecutter.django_version == "5.2" %}
EMAIL_BACKEND = _mailer["BACKEND"]  # Django 6.1 takes _mailer as it is: MAILERS = {"default": _mailer}
if _options := _mailer["OPTIONS"]:
    EMAIL_HOST, EMAIL_PORT, EMAIL_TIMEOUT = _options["host"], _options["port"], _options["timeout"]
    EMAIL_HOST_USER, EMAIL_HOST_PASSWORD = _options["username"], _options["password"]
    EMAIL_USE_TLS, EMAIL_USE_SSL = _options["use_tls"], _options["use_ssl"]
{%- else %}
MAILERS = {"default": _mailer}
{%- endif %}
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "").strip() or "webmaster@localhost"
SERVER_EMAIL = os.environ.get("SERVER_EMAIL", "").strip() or DEFAULT_FROM_EMAIL  # error reports come from it
# Who gets a mail for each server error (500), comma-separated addresses.
{%- if cookiecutter.django_version == "5.2" %}
ADMINS = [(address, address) for address in env_list("ADMINS")]
{%- else %}
ADMINS = env_list("ADMINS")
{%- endif %}
# The admin's login is the site's login (password-reset pages link to it).
LOGIN_URL = "admin:login"

# Sign-in protection (README "Sign-in protection"). django-axes counts failed logins in the database (shared by every
# worker and replica) per client address and per account: at LOGIN_FAILURE_LIMIT failures either is locked out,
# with a 429 page and no password check, for LOGIN_COOLOFF_SECONDS after its last counted failure. Failures while
# locked do not extend it, so an attacker cannot keep a real user out for longer than that at a time.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(seconds=env_int("LOGIN_COOLOFF_SECONDS", 900))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_FORM_FIELD = "username"  # the admin login's field, whatever the user model signs in with
AXES_USERNAME_CALLABLE = "users.limits.login_name"
AXES_CLIENT_IP_CALLABLE = "users.limits.client_ip"
AXES_LOCKOUT_CALLABLE = "users.limits.login_locked_out"
AXES_DISABLE_ACCESS_LOG = True  # failures are kept (until their cool-off), not a row for every successful login
AXES_VERBOSE = False  # no banner on every start and manage.py command; failures and lockouts are still logged
# The header that nginx (or the Ingress) fills with the visitor's address; empty: the connection's address.
CLIENT_IP_HEADER = os.environ.get("CLIENT_IP_HEADER", "X-Real-IP").strip()
# At most this many password-reset requests per client and per address in the window; past them a 429, no mail.
PASSWORD_RESET_LIMIT_PER_CLIENT = env_int("PASSWORD_RESET_LIMIT_PER_CLIENT", 5)
PASSWORD_RESET_LIMIT_PER_ADDRESS = env_int("PASSWORD_RESET_LIMIT_PER_ADDRESS", 3)
PASSWORD_RESET_WINDOW = env_int("PASSWORD_RESET_WINDOW_SECONDS", 3600)
# At most this many sign-ups per client in the window (allauth counts them in the cache); past them a 429.
SIGNUP_LIMIT_PER_CLIENT = env_int("SIGNUP_LIMIT_PER_CLIENT", 10)
SIGNUP_WINDOW = env_int("SIGNUP_WINDOW_SECONDS", 3600)
for _name, _value in [
    ("LOGIN_FAILURE_LIMIT", AXES_FAILURE_LIMIT),
    ("LOGIN_COOLOFF_SECONDS", AXES_COOLOFF_TIME.total_seconds()),
    ("PASSWORD_RESET_LIMIT_PER_CLIENT", PASSWORD_RESET_LIMIT_PER_CLIENT),
    ("PASSWORD_RESET_LIMIT_PER_ADDRESS", PASSWORD_RESET_LIMIT_PER_ADDRESS),
    ("PASSWORD_RESET_WINDOW_SECONDS", PASSWORD_RESET_WINDOW),
    ("SIGNUP_LIMIT_PER_CLIENT", SIGNUP_LIMIT_PER_CLIENT),
    ("SIGNUP_WINDOW_SECONDS", SIGNUP_WINDOW),
]:
    if _value < 1:
        raise ImproperlyConfigured(f"{_name}={_value:g} must be at least 1.")

# Accounts (django-allauth): sign-up, login and logout, password change and reset, email verification and change,
# MFA (TOTP with recovery codes, passkeys), the user's sessions, and social login when configured (README "Accounts").
INSTALLED_APPS += [
    "django.contrib.humanize",  # the passkey and session lists' dates
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.usersessions",
]
MIDDLEWARE += [
    "allauth.account.middleware.AccountMiddleware",
    "allauth.usersessions.middleware.UserSessionsMiddleware",
    # Staff without a second factor are sent to set one up before any other page (the admin too).
    "users.accounts.StaffMFAMiddleware",
]
# After ModelBackend, which finds look-alike addresses by their key; allauth's logs in users it verified itself
# (a passkey, a confirmed address). Both run inside authenticate(), so axes counts each failure once.
AUTHENTICATION_BACKENDS += ["allauth.account.auth_backends.AuthenticationBackend"]
LOGIN_URL = "account_login"  # the admin's login too (config/urls.py): one way in, with MFA and the limits
LOGIN_REDIRECT_URL = ACCOUNT_LOGOUT_REDIRECT_URL = "/"
ACCOUNT_ADAPTER = "users.accounts.AccountAdapter"
{%- if cookiecutter.username_type == "email" %}
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_FORMS = {"login": "users.accounts.LoginForm"}  # every spelling of an address is one account
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
{%- else %}
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email*", "password1*", "password2*"]
{%- endif %}
ACCOUNT_UNIQUE_EMAIL = True
# Sign-up and reset pages say the same whether or not an account exists (a mail tells the owner instead).
ACCOUNT_PREVENT_ENUMERATION = True
# Mandatory on the live site: no login before the address is confirmed. Optional in development.
ACCOUNT_EMAIL_VERIFICATION = os.environ.get("ACCOUNT_EMAIL_VERIFICATION", "").strip() or (
    "optional" if DEBUG else "mandatory"
)
if ACCOUNT_EMAIL_VERIFICATION not in ("mandatory", "optional", "none"):
    raise ImproperlyConfigured(
        f"ACCOUNT_EMAIL_VERIFICATION={ACCOUNT_EMAIL_VERIFICATION!r}: use mandatory, optional or none."
    )
ACCOUNT_EMAIL_SUBJECT_PREFIX = ""
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "http" if DEBUG else "https"
# Where the links in mails (verification, password reset) point: the site's own address, never the Host header
# of the request that asked for the mail. By default https:// and the first of ALLOWED_HOSTS.
SITE_URL = os.environ.get("SITE_URL", "").strip().rstrip("/")
if not SITE_URL and not DEBUG:
    if ALLOWED_HOSTS[0].lstrip(".") in ("", "*"):
        raise ImproperlyConfigured("SITE_URL is not set: set it to the site's address, e.g. https://example.com.")
    SITE_URL = "https://" + ALLOWED_HOSTS[0].lstrip(".")
# One limiter per attempt: wrong passwords are counted by axes (above, through authenticate()), so allauth's
# own password count is off (users.accounts.AccountAdapter); wrong MFA codes are counted by allauth with the same
# numbers (LOGIN_FAILURE_LIMIT per account per LOGIN_COOLOFF_SECONDS); reset requests by the project's reset limit,
# one count for the admin's reset page and allauth's (users.accounts.PasswordResetView), so allauth's is off;
# sign-ups by allauth, per client address (users.accounts.AccountAdapter.get_client_ip: nginx's X-Real-IP).
ACCOUNT_RATE_LIMITS = {
    "login_failed": f"{AXES_FAILURE_LIMIT}/{AXES_COOLOFF_TIME.total_seconds():.0f}s/key",
    "signup": f"{SIGNUP_LIMIT_PER_CLIENT}/{SIGNUP_WINDOW}s/ip",
    "reset_password": None,  # nosec B105: a rate limit named "password", off (no password here)
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_PASSKEY_LOGIN_ENABLED = True  # "Sign in with a passkey" on the login page, no password
MFA_TOTP_ISSUER = {{ cookiecutter.project_name | tojson }}
# Staff must add a second factor before they can open the admin (or any page but their account's).
STAFF_MFA_REQUIRED = env_bool("STAFF_MFA_REQUIRED", not DEBUG)
# Social login, off unless named: SOCIAL_LOGIN_PROVIDERS=github,google, each with SOCIAL_<NAME>_CLIENT_ID and
# SOCIAL_<NAME>_SECRET (an OAuth app you register with the provider; README "Social login").
SOCIAL_LOGIN_PROVIDERS = [name.lower() for name in env_list("SOCIAL_LOGIN_PROVIDERS")]
SOCIALACCOUNT_PROVIDERS: dict[str, dict[str, list[dict[str, str]]]] = {}
for _provider in SOCIAL_LOGIN_PROVIDERS:
    if not _provider.isidentifier() or find_spec(f"allauth.socialaccount.providers.{_provider}") is None:
        raise ImproperlyConfigured(
            f"SOCIAL_LOGIN_PROVIDERS names {_provider!r}, which django-allauth does not provide: use the names of "
            "its providers (github, google, gitlab, microsoft...)."
        )
    _app: dict[str, str] = {}
    for _field, _key in (("client_id", "CLIENT_ID"), ("secret", "SECRET")):
        _variable = f"SOCIAL_{_provider.upper()}_{_key}"
        _app[_field] = os.environ.get(_variable, "").strip()
        if not _app[_field]:
            raise ImproperlyConfigured(f"{_variable} is not set: {_provider} is in SOCIAL_LOGIN_PROVIDERS.")
    INSTALLED_APPS.append(f"allauth.socialaccount.providers.{_provider}")
    SOCIALACCOUNT_PROVIDERS[_provider] = {"APPS": [_app]}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = os.environ.get("LANGUAGE_CODE", "en-us")
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# Static files: collected into the nginx image at build time, with hashed names so nginx can
# cache them for a year. Media: user uploads, on a volume nginx serves from /media/.
STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT") or BASE_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}
{%- if cookiecutter.media_storage == "s3" %}

# Media in object storage (media_storage=s3; README "Media in object storage"): uploads go to a private bucket of any
# S3-compatible storage, and the site links them by short-lived signed URLs (nothing on a volume, nothing through
# nginx). The app's storage.py stores every file as a download of bytes unless it is a raster image. Required on the
# live site; in development uploads stay in MEDIA_ROOT unless MEDIA_S3_BUCKET is set.
MEDIA_S3_BUCKET = os.environ.get("MEDIA_S3_BUCKET", "").strip()
if MEDIA_S3_BUCKET or not DEBUG:
    _s3: dict[str, str] = {}
    for _name, _hint in (
        ("MEDIA_S3_BUCKET", "the name of the bucket the uploads go to (private: no public access)"),
        ("MEDIA_S3_REGION", "the bucket's region, e.g. eu-central-1 (us-east-1 for most S3-compatible services)"),
        ("MEDIA_S3_ACCESS_KEY_ID", "the access key of a user allowed to read, write and delete in the bucket"),
        ("MEDIA_S3_SECRET_ACCESS_KEY", "that access key's secret"),
    ):
        _s3[_name] = os.environ.get(_name, "").strip()
        if not _s3[_name]:
            raise ImproperlyConfigured(
                f"{_name} is not set: media_storage=s3 keeps uploads in a bucket. Set it in .envs/prod.env to {_hint}."
            )
    MEDIA_S3_URL_EXPIRES = env_int("MEDIA_S3_URL_EXPIRES", 300)
    if MEDIA_S3_URL_EXPIRES < 1:
        raise ImproperlyConfigured(f"MEDIA_S3_URL_EXPIRES={MEDIA_S3_URL_EXPIRES} must be at least 1 (seconds).")
    # Empty for Amazon S3 itself; the URL of any other S3-compatible service (https://s3.example.com).
    MEDIA_S3_ENDPOINT_URL = os.environ.get("MEDIA_S3_ENDPOINT_URL", "").strip() or None
    _media_storage: dict[str, Any] = {
        "BACKEND": "{{ cookiecutter.project_slug }}.storage.MediaStorage",
        "OPTIONS": {
            "bucket_name": _s3["MEDIA_S3_BUCKET"],
            "region_name": _s3["MEDIA_S3_REGION"],
            "access_key": _s3["MEDIA_S3_ACCESS_KEY_ID"],
            "secret_key": _s3["MEDIA_S3_SECRET_ACCESS_KEY"],
            "endpoint_url": MEDIA_S3_ENDPOINT_URL,
            # Path-style URLs (endpoint/bucket/key) for S3-compatible services, whose buckets often have no DNS name.
            "addressing_style": os.environ.get("MEDIA_S3_ADDRESSING_STYLE", "").strip()
            or ("path" if MEDIA_S3_ENDPOINT_URL else None),
            "signature_version": "s3v4",
            # Private objects (the bucket's default ACL), read through signed URLs that expire: a link copied out of
            # a page stops working after MEDIA_S3_URL_EXPIRES seconds.
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": MEDIA_S3_URL_EXPIRES,
            # A second upload of the same name gets a new name, as on a volume; it never replaces the first.
            "file_overwrite": False,
        },
    }
    STORAGES["default"] = _media_storage
{%- endif %}

# Behind nginx: it sets X-Forwarded-Proto (passing on the edge's, or a trusted proxy's, never a client's),
# so Django knows when the visitor used HTTPS.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
# Opt-in: they bind every subdomain, and with preload browsers' built-in lists, to HTTPS for the
# whole max-age, which is hard to undo.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Off by choice until opted in, so `check --deploy` need not warn about them.
SILENCED_SYSTEM_CHECKS = [
    check
    for check, enabled in (("security.W005", SECURE_HSTS_INCLUDE_SUBDOMAINS), ("security.W021", SECURE_HSTS_PRELOAD))
    if not enabled
]
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy: scripts, styles and images from this site only, no inline script, no
# plugins, no framing. The home page and the admin work with it; add sources here as you need them.
CONTENT_SECURITY_POLICY_DIRECTIVES = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
{%- if cookiecutter.django_version == "5.2" %}
CONTENT_SECURITY_POLICY = {"DIRECTIVES": CONTENT_SECURITY_POLICY_DIRECTIVES}  # django-csp
{%- else %}
SECURE_CSP = CONTENT_SECURITY_POLICY_DIRECTIVES
{%- endif %}
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024)

{% if cookiecutter.api != "none" -%}
# API ({{ cookiecutter.api }}): /api/ (README "The API"), its OpenAPI 3 schema at /api/schema/ and Swagger UI at /api/docs/.
# Pages of this site call it with their session cookie (and CSRF). Scripts and apps send a session token in
# X-Session-Token: allauth's headless login (/_allauth/app/v1/auth/login) gives it, after the second factor when the
# account has one. No endpoint trades a password alone for a token: a script could skip the second factor with it.
# allauth itself is set up above (Accounts); the API adds its headless part.
INSTALLED_APPS += ["allauth.headless", "corsheaders"]
{%- if cookiecutter.api == "drf" %}
INSTALLED_APPS += ["rest_framework", "drf_spectacular", "drf_spectacular_sidecar"]
{%- else %}
INSTALLED_APPS += ["ninja"]  # its Swagger UI's files, served from /static/
{%- endif %}
# CORS before CommonMiddleware (it answers preflights); API errors as JSON around everything under it.
_common = MIDDLEWARE.index("django.middleware.common.CommonMiddleware")
MIDDLEWARE[_common:_common] = [
    "corsheaders.middleware.CorsMiddleware",
    "{{ cookiecutter.project_slug }}.api.errors.JsonErrorsMiddleware",
]
HEADLESS_CLIENTS = ("app",)  # tokens for scripts and apps; the site's own pages have their session
HEADLESS_SERVE_SPECIFICATION = False
# CORS: off unless CORS_ALLOWED_ORIGINS lists the origins (https://app.example.com, comma-separated) whose pages
# may call the API from a browser; they send the token in X-Session-Token, never the site's cookies.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_URLS_REGEX = r"^/(api|_allauth)/"
CORS_ALLOW_HEADERS = ("accept", "content-type", "x-session-token")
CORS_ALLOW_CREDENTIALS = False


def env_rate(name: str, default: str) -> str:
    """A throttle rate: a number of requests per sec, min, hour or day ("60/min")."""
    raw = os.environ.get(name, "").strip() or default
    number, _, period = raw.partition("/")
    if not number.isdigit() or int(number) < 1 or period not in {"sec", "min", "hour", "day"}:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a rate: write requests/period, e.g. 60/min or 5000/day.")
    return raw


# Throttling, per client address for anonymous calls and per user for signed-in ones.
API_THROTTLE_ANON = env_rate("API_THROTTLE_ANON", "60/min")
API_THROTTLE_USER = env_rate("API_THROTTLE_USER", "1000/min")
API_PAGE_SIZE = 20
{%- if cookiecutter.api == "drf" %}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "{{ cookiecutter.project_slug }}.api.drf_auth.SessionTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": API_PAGE_SIZE,
    "DEFAULT_THROTTLE_CLASSES": [
        "{{ cookiecutter.project_slug }}.api.drf_auth.AnonThrottle",
        "{{ cookiecutter.project_slug }}.api.drf_auth.UserThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {"anon": API_THROTTLE_ANON, "user": API_THROTTLE_USER},
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": {{ (cookiecutter.project_name ~ " API") | tojson }},
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,  # an upload is binary in requests, a URL in responses
    # Swagger UI's files from drf-spectacular-sidecar, through /static/: no CDN, and the CSP stays as it is.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "{{ cookiecutter.project_slug }}.api.drf_api.document_api",
    ],
}
{%- endif %}

{% endif -%}
{% if cookiecutter.use_sentry == "y" -%}
# Error reports to Sentry (or a Sentry-compatible service), only where SENTRY_DSN is set. No personal data
# (user ids and emails, IP addresses, cookies) unless you opt in; the release is the image tag (APP_VERSION,
# set by compose.prod.yaml), so each report names the version that raised it.
SENTRY_DSN = os.environ.get("SENTRY_DSN", "").strip()
if SENTRY_DSN:
    import sentry_sdk
{%- if cookiecutter.use_celery == "y" %}
    from sentry_sdk.integrations.celery import CeleryIntegration
{%- endif %}
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        # No personal data: no user, cookies or client address (send_default_pii), no request bodies (a form's
        # email or password), no local variables of the frames (a user object, a token).
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=False,
        release=os.environ.get("APP_VERSION", "").strip() or None,
        environment=os.environ.get("SENTRY_ENVIRONMENT", "").strip() or ("development" if DEBUG else "production"),
        integrations=[DjangoIntegration(){% if cookiecutter.use_celery == "y" %}, CeleryIntegration(){% endif %}],
    )

{% endif -%}
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"require_debug_false": {"()": "django.utils.log.RequireDebugFalse"}},
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "plain"},
        "mail_admins": {
            "level": "ERROR",
            "filters": ["require_debug_false"],
            "class": "config.mail.ReportingAdminEmailHandler",
        },
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    # Django gives its own logger a console handler too, and the records also reach the root's:
    # listing it here drops that handler, so each line is printed once. Errors also mail ADMINS.
    "loggers": {"django": {"level": LOG_LEVEL, "handlers": ["mail_admins"]}},
}

# Development tools (README "Development tools").
# django-debug-toolbar: a dev dependency, so only the development image has it (never the live one). On while DEBUG
# is, for requests from this machine (INTERNAL_IPS). DEBUG_TOOLBAR=0 turns it off; the tests do (tests/settings.py).
DEBUG_TOOLBAR = DEBUG and env_bool("DEBUG_TOOLBAR", True) and find_spec("debug_toolbar") is not None


def container_gateways(root: Path = Path("/")) -> list[str]:
    """In a container, its default gateways: the host's end of the Docker network, where a browser on the host comes
    from through a published port. None outside one (there it would be the LAN's router)."""
    if not ((root / ".dockerenv").exists() or (root / "run/.containerenv").exists()):
        return []
    try:
        routes = [line.split() for line in (root / "proc/net/route").read_text().splitlines()[1:]]
    except OSError:
        return []
    # The default route's gateway, in hex, little-endian: 010012AC is 172.18.0.1.
    return [".".join(map(str, reversed(bytes.fromhex(r[2])))) for r in routes if len(r) > 2 and r[1] == "00000000"]


if DEBUG_TOOLBAR:
    INSTALLED_APPS.append("debug_toolbar")
    # After the probes (they stay bare), before everything else.
    MIDDLEWARE.insert(
        MIDDLEWARE.index("{{ cookiecutter.project_slug }}.health.HealthCheckMiddleware") + 1,
        "debug_toolbar.middleware.DebugToolbarMiddleware",
    )
    INTERNAL_IPS = ["127.0.0.1", "::1", *container_gateways()]
# mypy wants type arguments on Django's generic classes (admin.ModelAdmin[Item]): this lets them run too.
django_stubs_ext.monkeypatch()
