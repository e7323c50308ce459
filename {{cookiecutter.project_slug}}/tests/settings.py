"""Settings for the test run: the development defaults, plus what makes tests fast and isolated."""

import os

# Like manage.py: development defaults unless the environment says otherwise.
os.environ.setdefault("DEBUG", "1")
# Development tools: no debug toolbar in tests (it would slow every request, and Django runs them with DEBUG off).
os.environ["DEBUG_TOOLBAR"] = "0"

from config.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# No login lockouts across tests (they share one client address); tests/test_limits.py turns them on.
AXES_ENABLED = False
# The static template tag resolves names without a collectstatic manifest.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
{%- if cookiecutter.use_celery == "y" %}
# Run tasks in-process, so tests need no broker or worker.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = "cache+memory://"
{%- endif %}
