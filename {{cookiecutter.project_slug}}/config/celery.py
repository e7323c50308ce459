"""The Celery app. Start a worker with: celery -A config worker --loglevel INFO
and the scheduler (one, never more) with: celery -A config beat --schedule /tmp/celerybeat-schedule"""

import os
from pathlib import Path
from typing import Any

from celery import Celery
from celery.beat import PersistentScheduler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("{{ cookiecutter.project_slug }}")
# All CELERY_* names in config/settings.py configure Celery.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Beat answers no `inspect ping`: its healthcheck reads this file's age instead.
HEARTBEAT = Path("/tmp/celerybeat-heartbeat")  # nosec B108: the container's own /tmp; holds no data


class HeartbeatScheduler(PersistentScheduler):
    """Beat's default scheduler, touching HEARTBEAT on each tick (at least every beat_max_loop_interval)."""

    def tick(self, *args: Any, **kwargs: Any) -> float:
        HEARTBEAT.touch()
        return super().tick(*args, **kwargs)
