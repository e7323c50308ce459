"""Media in object storage (media_storage=s3): what each upload is stored and served as, and the bucket's settings.
Nothing here reaches a bucket: signing a URL needs only the keys."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from {{ cookiecutter.project_slug }}.storage import MediaStorage, served_as

from .test_settings import PRODUCTION, run_python

DOWNLOAD = {"ContentType": "application/octet-stream", "ContentDisposition": "attachment"}


def storage() -> MediaStorage:
    return MediaStorage(
        bucket_name="media",
        region_name="us-east-1",
        access_key="test-key-id",
        secret_key="test-secret",
        endpoint_url="https://s3.example.com",
        addressing_style="path",
        signature_version="s3v4",  # as config/settings.py sets it
        querystring_expire=300,
    )


IMAGES = [("a.png", "image/png"), ("b.JPG", "image/jpeg"), ("c.jpeg", "image/jpeg"), ("d.gif", "image/gif")]


@pytest.mark.parametrize("name, content_type", [*IMAGES, ("e.webp", "image/webp"), ("f.avif", "image/avif")])
def test_raster_images_are_shown_inline_as_themselves(name: str, content_type: str) -> None:
    assert served_as(f"documents/2026/01/{name}") == {"ContentType": content_type, "ContentDisposition": "inline"}


@pytest.mark.parametrize("name", ["a.txt", "b.pdf", "c.csv", "d.docx", "e.html", "f.svg", "g.HTM", "no-extension"])
def test_everything_else_downloads_as_bytes(name: str) -> None:
    assert served_as(f"documents/2026/01/{name}") == DOWNLOAD


def test_the_uploaders_claimed_type_is_never_stored() -> None:
    upload = SimpleUploadedFile("page.txt", b"<script>alert(1)</script>", content_type="text/html")
    assert storage()._get_write_parameters("documents/page.txt", upload) == DOWNLOAD


def test_links_are_signed_expire_and_ask_for_the_same_type() -> None:
    url = storage().url("documents/2026/01/page.txt")
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert parts.netloc == "s3.example.com" and parts.path == "/media/documents/2026/01/page.txt"
    assert query["X-Amz-Expires"] == "300" and query["X-Amz-Credential"].startswith("test-key-id/")
    assert query["X-Amz-Signature"]
    assert query["response-content-type"] == "application/octet-stream"
    assert query["response-content-disposition"] == "attachment"


def default_storage(**environ: str) -> str:
    result = run_python("from django.conf import settings; print(settings.STORAGES['default']['BACKEND'])", **environ)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_production_keeps_uploads_in_the_bucket() -> None:
    assert default_storage(**PRODUCTION) == "{{ cookiecutter.project_slug }}.storage.MediaStorage"


def test_development_without_a_bucket_keeps_them_in_media_root() -> None:
    assert default_storage(DEBUG="1") == "django.core.files.storage.FileSystemStorage"


@pytest.mark.parametrize("missing", [name for name in PRODUCTION if name.startswith("MEDIA_S3_")])
def test_production_refuses_to_start_without(missing: str) -> None:
    without = {key: value for key, value in PRODUCTION.items() if key != missing}
    result = run_python("import django.conf; django.conf.settings.STORAGES", **without)
    assert result.returncode != 0
    assert f"{missing} is not set: media_storage=s3 keeps uploads in a bucket. Set it in" in result.stderr


def test_a_link_that_cannot_work_is_refused() -> None:
    result = run_python("import django.conf; django.conf.settings.STORAGES", **PRODUCTION, MEDIA_S3_URL_EXPIRES="0")
    assert result.returncode != 0 and "MEDIA_S3_URL_EXPIRES=0 must be at least 1" in result.stderr
