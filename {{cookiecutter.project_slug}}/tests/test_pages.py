import pytest
from django.core.files.base import ContentFile

from {{ cookiecutter.project_slug }}.models import Document


@pytest.mark.django_db
def test_home_page_lists_documents(client):
    Document.objects.create(title="Quarterly report", file=ContentFile(b"numbers", name="report.txt"))
    response = client.get("/")
    assert response.status_code == 200
    assert "{{ cookiecutter.project_name }}" in response.text
    assert "Quarterly report" in response.text
    assert "/media/documents/" in response.text


@pytest.mark.django_db
def test_uploaded_file_is_stored_under_media_root(settings):
    document = Document.objects.create(title="Notes", file=ContentFile(b"hello", name="notes.txt"))
    stored = settings.MEDIA_ROOT / document.file.name
    assert stored.read_bytes() == b"hello"
    assert document.file.url.startswith("/media/documents/")


@pytest.mark.django_db
def test_admin_lists_documents(admin_client):
    Document.objects.create(title="In the admin", file=ContentFile(b"x", name="x.txt"))
    response = admin_client.get("/admin/{{ cookiecutter.project_slug }}/document/")
    assert response.status_code == 200
    assert "In the admin" in response.text


def test_admin_login_page(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert "csrfmiddlewaretoken" in response.text
