import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from {{ cookiecutter.project_slug }}.tasks import clear_expired_sessions, count_documents

# config/celery.py is imported in the tests that use it: beside the import above it would sort before or after it
# depending on the project's name, so ruff's import order (and `make lint`) would differ from project to project.


@pytest.mark.django_db
def test_count_documents_task() -> None:
    result = count_documents.delay()
    assert result.get(timeout=5)["documents"] == 0


@pytest.mark.django_db
def test_staff_queue_a_task_from_the_home_page_and_see_its_result(admin_client: Client) -> None:
    assert 'action="/tasks/"' in admin_client.get("/").text
    response = admin_client.post("/tasks/")
    assert response.status_code == 302
    status = admin_client.get(response["Location"]).json()
    assert status["state"] == "SUCCESS"
    assert status["result"]["documents"] == 0


@pytest.mark.django_db
def test_anyone_else_is_sent_to_the_login_and_queues_nothing(
    client: Client, admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A task that staff queued: its result is not for anyone else to read.
    task_id = admin_client.post("/tasks/")["Location"].rstrip("/").rsplit("/", 1)[1]
    status = client.get(f"/tasks/{task_id}/")
    assert status.status_code == 302 and status["Location"].startswith("/admin/login/")
    queued = []
    monkeypatch.setattr(count_documents, "delay", lambda: queued.append(1))
    assert 'action="/tasks/"' not in client.get("/").text
    response = client.post("/tasks/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert queued == []


@pytest.mark.django_db
def test_the_periodic_task_deletes_expired_sessions_only() -> None:
    for expired in (True, True, False):
        session = SessionStore()
        session["visited"] = True
        session.create()
        if expired:
            Session.objects.filter(pk=session.session_key).update(expire_date=timezone.now() - timedelta(days=1))
    assert clear_expired_sessions.delay().get(timeout=5) == 2
    assert Session.objects.count() == 1 and Session.objects.get().expire_date > timezone.now()


def test_beat_sends_a_registered_task() -> None:
    """Each entry of the schedule names a task the worker knows, so beat never sends one it cannot run."""
    from config.celery import app

    app.loader.import_default_modules()
    for entry in app.conf.beat_schedule.values():
        assert entry["task"] in app.tasks, entry


def test_the_beat_scheduler_touches_its_heartbeat_on_each_tick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from config import celery as module
    from config.celery import app

    heartbeat = tmp_path / "heartbeat"
    monkeypatch.setattr(module, "HEARTBEAT", heartbeat)
    scheduler = module.HeartbeatScheduler(app, schedule_filename=str(tmp_path / "schedule"), lazy=True)
    scheduler.setup_schedule()
    try:
        assert not heartbeat.exists()
        scheduler.tick()
        os.utime(heartbeat, (0, 0))  # as if the last tick were long ago
        scheduler.tick()
        assert time.time() - heartbeat.stat().st_mtime < 60
    finally:
        scheduler.close()
