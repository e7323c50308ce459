import logging
from typing import Any

from celery import Task, shared_task
from django.contrib.sessions.models import Session
from django.core.management import call_command

from .models import Document

logger = logging.getLogger(__name__)


@shared_task(bind=True)
def count_documents(self: Task[[], dict[str, Any]]) -> dict[str, Any]:
    """A small task that touches the database, and says which worker ran it."""
    return {"documents": Document.objects.count(), "worker": self.request.hostname}


@shared_task
def clear_expired_sessions() -> int:
    """Django's clearsessions, run by beat (CELERY_BEAT_SCHEDULE in config/settings.py): the session table
    only grows otherwise. Returns how many sessions it deleted."""
    before = Session.objects.count()
    call_command("clearsessions")
    deleted = before - Session.objects.count()
    logger.info("clear_expired_sessions: deleted %d expired sessions", deleted)
    return deleted
