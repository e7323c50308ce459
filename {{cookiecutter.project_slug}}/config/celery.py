"""The Celery app. Start a worker with: celery -A config worker --loglevel INFO"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("{{ cookiecutter.project_slug }}")
# All CELERY_* names in config/settings.py configure Celery.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
