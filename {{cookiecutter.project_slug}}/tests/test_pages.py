from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pytest_django import Settings

from {{ cookiecutter.project_slug }}.models import Document

from .factories import DocumentFactory


@pytest.mark.django_db
def test_home_page_lists_documents(client: Client) -> None:
    DocumentFactory.create(title="Quarterly report")
    response = client.get("/")
    assert response.status_code == 200
    assert "{{ cookiecutter.project_name }}" in response.text
    assert "Quarterly report" in response.text
    assert "/media/documents/" in response.text


@pytest.mark.django_db
def test_uploaded_file_is_stored_under_media_root(settings: Settings) -> None:
    document = DocumentFactory.create(file__data=b"hello")
    stored = Path(settings.MEDIA_ROOT) / str(document.file.name)
    assert stored.read_bytes() == b"hello"
    assert document.file.url.startswith("/media/documents/")


@pytest.mark.django_db
def test_admin_lists_documents(admin_client: Client) -> None:
    DocumentFactory.create(title="In the admin")
    response = admin_client.get("/admin/{{ cookiecutter.project_slug }}/document/")
    assert response.status_code == 200
    assert "In the admin" in response.text


@pytest.mark.django_db
def test_admin_login_page(client: Client) -> None:
    # The admin has no login of its own (tests/test_accounts.py): its login page sends to the site's.
    response = client.get("/admin/login/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/accounts/login/?next=")
    assert "csrfmiddlewaretoken" in client.get(response.headers["Location"]).text


@pytest.mark.parametrize("name", ["page.html", "drawing.svg", "page.HTM", "script.js"])
def test_files_a_browser_could_run_are_refused(name: str) -> None:
    document = Document(title="Attack", file=ContentFile(b"<script>alert(1)</script>", name=name))
    with pytest.raises(ValidationError) as refused:
        document.full_clean()
    assert "file" in refused.value.message_dict


@pytest.mark.django_db
def test_the_admin_refuses_an_html_upload(admin_client: Client) -> None:
    upload = SimpleUploadedFile("page.html", b"<script>alert(1)</script>", content_type="text/html")
    url = "/admin/{{ cookiecutter.project_slug }}/document/add/"
    response = admin_client.post(url, {"title": "Attack", "file": upload, "_save": "Save"})
    assert response.status_code == 200  # the form again, with the error
    assert "File extension \u201chtml\u201d is not allowed" in response.text
    assert not Document.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/accounts/login/"])
def test_pages_carry_a_strict_content_security_policy(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    policy = dict(
        directive.strip().split(" ", 1) for directive in response.headers["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"  # no inline script, no eval, no other host
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"


@pytest.mark.django_db
def test_the_home_page_pages_documents_ten_at_a_time(client: Client) -> None:
    for number in range(1, 13):
        DocumentFactory.create(title=f"Document {number:02}")
    first, second = client.get("/").text, client.get("/?page=2").text
    assert "Document 12" in first and "Document 03" in first and "Document 02" not in first
    assert "Document 02" in second and "Document 01" in second and "Document 03" not in second
    assert 'href="?page=2"' in first and 'href="?page=1"' in second  # plain links: they work without JavaScript
    assert "Document 01" in client.get("/?page=99").text  # past the end: the last page
