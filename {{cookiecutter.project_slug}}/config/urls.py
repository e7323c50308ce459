from allauth.account.decorators import secure_admin_login
from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from users.accounts import PasswordResetView as AccountsPasswordResetView
from users.limits import PasswordResetView

# Accounts: the admin signs in through allauth's login (MFA, the rate limits), never a login of its own.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]

urlpatterns = [
    # Password reset by email, with the admin's look; its login page links here ("Forgotten your password?").
    # Limited per client and per address (users/limits.py).
    path("admin/password-reset/", PasswordResetView.as_view(), name="admin_password_reset"),
    path("accounts/password-reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("accounts/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("admin/", admin.site.urls),
    # Accounts (django-allauth); its reset page with the project's reset limit (one count for both reset pages).
    path("accounts/password/reset/", AccountsPasswordResetView.as_view(), name="account_reset_password"),
    path("accounts/", include("allauth.urls")),
{%- if cookiecutter.api != "none" %}
    # API ({{ cookiecutter.api }}): README "The API". allauth's headless login gives scripts and apps their token.
    path("api/", include("{{ cookiecutter.project_slug }}.api.{{ cookiecutter.api }}_api")),
    path("_allauth/", include("allauth.headless.urls")),
{%- endif %}
    path("", include("{{ cookiecutter.project_slug }}.urls")),
]

if settings.DEBUG:
    # In development runserver serves uploads; in production nginx does.
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

# Development tools: the debug toolbar's pages, where config/settings.py turned it on (never in the live image).
if "debug_toolbar" in settings.INSTALLED_APPS:
    from debug_toolbar.toolbar import debug_toolbar_urls

    urlpatterns += debug_toolbar_urls()
