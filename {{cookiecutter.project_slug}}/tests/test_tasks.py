import pytest

from {{ cookiecutter.project_slug }}.tasks import count_documents


@pytest.mark.django_db
def test_count_documents_task():
    result = count_documents.delay()
    assert result.get(timeout=5)["documents"] == 0


@pytest.mark.django_db
def test_the_home_page_queues_a_task_and_shows_its_result(client):
    response = client.post("/tasks/")
    assert response.status_code == 302
    status = client.get(response["Location"]).json()
    assert status["state"] == "SUCCESS"
    assert status["result"]["documents"] == 0
