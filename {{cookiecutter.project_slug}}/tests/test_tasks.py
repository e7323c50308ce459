import pytest

from {{ cookiecutter.project_slug }}.tasks import count_documents


@pytest.mark.django_db
def test_count_documents_task():
    result = count_documents.delay()
    assert result.get(timeout=5)["documents"] == 0


@pytest.mark.django_db
def test_staff_queue_a_task_from_the_home_page_and_see_its_result(admin_client):
    assert 'action="/tasks/"' in admin_client.get("/").text
    response = admin_client.post("/tasks/")
    assert response.status_code == 302
    status = admin_client.get(response["Location"]).json()
    assert status["state"] == "SUCCESS"
    assert status["result"]["documents"] == 0


@pytest.mark.django_db
def test_anyone_else_is_sent_to_the_login_and_queues_nothing(client, admin_client, monkeypatch):
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
