"""Issue 26, media in object storage: a project baked with media_storage=s3, deployed live with moto's S3 server as
its bucket (on the stack's web network, where the app reaches it), used as a visitor and an admin would.

moto stands in for the storage. What it enforces, and so what these tests can prove against it: a private object is
refused without a signature (403). What it does not: moto's server checks no signature and no expiry of a presigned
URL (with its authentication on it cannot serve one at all: a 500), so the tests assert that every link carries a
signature by the site's key and a 300 s expiry, and leave their checking to the real storage.
Needs a Docker engine (skipped without one, except under CI where that is a failure)."""

from __future__ import annotations

import base64
import calendar
import html
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from support import (
    ADMIN_PASSWORD,
    DOMAIN,
    E2E_VARIANTS,
    LIVE,
    TIMEOUT,
    BackupProject,
    Browser,
    S3Server,
    answers,
    bake,
    poll,
    require_engine,
    run,
    signed_in,
    stack_name,
)

pytestmark = pytest.mark.e2e
BUCKET, REGION, KEY_ID = "e2e-media", "us-east-1", "AKIAE2EMEDIAKEY"
# What an attacker uploads: a page with script, under an allowed extension, its browser claiming text/html.
PAGE = b"<!doctype html><title>x</title><script>document.title = document.cookie</script>\n"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


class Bucket(S3Server):
    """moto's server on the live stack's web network, as the app's bucket."""

    def __init__(self, project: BackupProject):
        super().__init__(f"{project.slug}-s3", f"{project.slug}-live_web")
        self.project = project

    def start(self) -> None:
        super().start(self.project.path.parent / "s3-server")
        self.python(f"s3.create_bucket(Bucket='{BUCKET}')")
        self.address = run(
            ["docker", "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{self.network}").IPAddress}}}}']
            + [self.name]
        ).stdout.strip()

    def stored_as(self, key: str) -> tuple[str, str]:
        """The object's own Content-Type and Content-Disposition (what the bucket answers any request with)."""
        head = self.python(
            f"h = s3.head_object(Bucket='{BUCKET}', Key='{key}'); print(h['ContentType'], h.get('ContentDisposition'))"
        ).stdout.split()
        return head[0], head[1]

    def get(self, url: str) -> requests.Response:
        """GET a URL the site gave, as a browser would: to the server's address, with the URL's own Host."""
        parts = urlsplit(url)
        assert parts.netloc == f"{self.name}:5000", url
        direct = parts._replace(netloc=f"{self.address}:5000").geturl()
        return requests.get(direct, headers={"Host": parts.netloc}, timeout=30, allow_redirects=False)


def configure(project: BackupProject, endpoint: str) -> None:
    """.envs/prod.env's bucket settings, as a user fills them in."""
    settings = {
        "MEDIA_S3_BUCKET": BUCKET,
        "MEDIA_S3_REGION": REGION,
        "MEDIA_S3_ACCESS_KEY_ID": KEY_ID,
        "MEDIA_S3_SECRET_ACCESS_KEY": "e2e-media-secret",
    }
    path = project.path / ".envs/prod.env"
    text = path.read_text()
    for key, value in settings.items():
        text, found = re.subn(rf"(?m)^{key}=.*$", f"{key}={value}", text)
        assert found == 1, f"{key}= is not in prod.env"
    path.write_text(text + f"MEDIA_S3_ENDPOINT_URL={endpoint}\n")


def upload(browser: Browser, project: BackupProject, name: str, content: bytes, content_type: str):
    """Add a document through the admin, the file's type as the uploader's browser claims it."""
    return browser.post_form(
        f"/admin/{project.slug}/document/add/",
        {"title": name, "_save": "Save"},
        files={"file": (name, content, content_type)},
    )


def links(browser: Browser) -> dict[str, str]:
    """The home page's document links: title -> URL."""
    page = browser.get("/").text
    return {title: html.unescape(link) for link, title in re.findall(r'<a href="([^"]+)">([^<]+)</a>', page)}


@pytest.fixture(scope="class")
def stack(cookies_session, tmp_path_factory):
    require_engine()
    path = bake(
        cookies_session,
        project_name=stack_name("E2E Media S3"),
        domain_name=DOMAIN,
        **answers(**E2E_VARIANTS["media-s3"]),
    )
    project = BackupProject(path)
    bucket = Bucket(project)
    project.bucket = bucket
    project.remove()
    started = time.monotonic()
    try:
        configure(project, bucket.endpoint)
        project.make("build-live", timeout=1800)
        project.make("deploy", timeout=TIMEOUT + 300)
        bucket.start()  # on the web network deploy made; the app needs it only once something is uploaded
        project.run_once(
            "-e", f"DJANGO_SUPERUSER_PASSWORD={ADMIN_PASSWORD}", "app", "python", "manage.py", "createsuperuser",
            "--noinput", "--username", "admin", "--email", "admin@example.com",
        )  # fmt: skip
        print(f"\n[e2e] {project.slug}: built and deployed in {time.monotonic() - started:.0f}s")
        yield project
    finally:
        print(project.logs(LIVE, "app")[-3000:])
        print(run(["docker", "logs", "--tail", "30", bucket.name], check=False).stdout)
        bucket.remove()  # off the network first, so down can remove it
        project.remove()
        run(["docker", "rmi", "-f", f"{project.slug}-offsite:e2e"], check=False)


class TestMediaInABucket:
    def test_1_an_upload_lands_in_the_bucket_not_on_a_volume(self, stack):
        browser = signed_in(stack, "admin")
        assert upload(browser, stack, "notes.txt", b"Notes kept in the bucket\n", "text/plain").status_code == 302
        link = links(browser)["notes.txt"]
        parts = urlsplit(link)
        assert re.fullmatch(rf"/{BUCKET}/documents/\d{{4}}/\d{{2}}/notes[^/]*\.txt", parts.path), link
        key = parts.path.removeprefix(f"/{BUCKET}/")
        assert stack.bucket.objects(BUCKET)[key] == len(b"Notes kept in the bucket\n")
        # Nothing on a volume: none exists, the app mounts nothing at MEDIA_ROOT, and nginx has no /media/ route.
        assert run(["docker", "volume", "ls", "-q", "--filter", f"name={stack.slug}-live_media"]).stdout.strip() == ""
        for service in ("app", "nginx"):
            mounts = stack.inspect(stack.container(LIVE, service))["Mounts"]
            assert not [m for m in mounts if m["Destination"].startswith("/srv/media")], mounts
        assert browser.get(f"/media/{key}").status_code == 404
        assert stack.health(LIVE, "app") == "healthy" and stack.health(LIVE, "nginx") == "healthy"

    def test_2_the_bucket_serves_uploads_only_through_signed_expiring_links(self, stack):
        browser = signed_in(stack, "admin")
        link = links(browser)["notes.txt"]
        fetched = stack.bucket.get(link)
        assert fetched.status_code == 200 and fetched.content == b"Notes kept in the bucket\n", fetched.text[:300]
        # The bucket is private: the same object without the signature is refused.
        unsigned = stack.bucket.get(link.split("?")[0])
        assert unsigned.status_code == 403, unsigned.text[:300]
        # Signed (SigV4) with the site's key, valid for MEDIA_S3_URL_EXPIRES (300 s) from when the page was made.
        query = {name: values[0] for name, values in parse_qs(urlsplit(link).query).items()}
        assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" and re.fullmatch(
            r"[0-9a-f]{64}", query["X-Amz-Signature"]
        )
        assert query["X-Amz-Credential"].startswith(f"{KEY_ID}/") and query["X-Amz-Expires"] == "300"
        signed_at = calendar.timegm(time.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
        assert abs(time.time() - signed_at) < 120, query["X-Amz-Date"]
        # A new page gives a new link (signed anew), never one a visitor kept.
        time.sleep(1.1)
        assert links(browser)["notes.txt"] != link

    def test_3_uploads_download_as_bytes_unless_raster_images(self, stack):
        """The attack first: a .txt whose browser claims text/html, saved through django-storages' own S3 backend
        (the project's settings, without its MediaStorage), is served by the bucket as a page: script runs. Through
        the site the same upload downloads as bytes; .html and .svg are refused; a PNG shows inline."""
        stock = (
            "from django.conf import settings; from django.core.files.uploadedfile import SimpleUploadedFile;"
            "from storages.backends.s3 import S3Storage;"
            "stock = S3Storage(**settings.STORAGES['default']['OPTIONS']);"
            f"name = stock.save('stock/page.txt', SimpleUploadedFile('page.txt', {PAGE!r}, content_type='text/html'));"
            "print(stock.url(name))"
        )
        url = (
            stack.live("exec", "-T", "app", "python", "manage.py", "shell", "-c", stock).stdout.strip().splitlines()[-1]
        )
        attack = stack.bucket.get(url)
        assert attack.status_code == 200 and attack.content == PAGE
        assert attack.headers["Content-Type"] == "text/html", "django-storages alone stores the uploader's claim"
        assert "attachment" not in attack.headers.get("Content-Disposition", ""), "...and serves it inline"

        browser = signed_in(stack, "admin")
        before = stack.bucket.objects(BUCKET)
        for name, content_type in (("page.html", "text/html"), ("drawing.svg", "image/svg+xml")):
            refused = upload(browser, stack, name, PAGE, content_type)
            assert refused.status_code == 200 and "is not allowed" in html.unescape(refused.text), refused.text[:500]
        assert stack.bucket.objects(BUCKET) == before, "a refused upload reached the bucket"

        assert upload(browser, stack, "page.txt", PAGE, "text/html").status_code == 302
        assert upload(browser, stack, "dot.png", PNG, "image/png").status_code == 302
        found = links(browser)
        page, image = stack.bucket.get(found["page.txt"]), stack.bucket.get(found["dot.png"])
        assert page.status_code == 200 and page.content == PAGE
        assert page.headers["Content-Type"] == "application/octet-stream"
        assert page.headers["Content-Disposition"] == "attachment"
        assert image.status_code == 200 and image.content == PNG
        assert image.headers["Content-Type"] == "image/png" and image.headers["Content-Disposition"] == "inline"
        # On the objects themselves too: whoever gets a URL to them, signed by the site or not.
        for title, stored in (
            ("page.txt", ("application/octet-stream", "attachment")),
            ("dot.png", ("image/png", "inline")),
        ):
            assert stack.bucket.stored_as(urlsplit(found[title]).path.removeprefix(f"/{BUCKET}/")) == stored

    def test_4_backups_hold_the_database_and_say_media_are_the_buckets(self, stack):
        browser = signed_in(stack, "admin")
        kept = links(browser)
        taken = stack.make("backup")
        name = re.search(r"OK (db-\d{8}T\d{6}Z\.dump\.age)", taken.output).group(1)
        assert "media: not in this backup: media_storage=s3 keeps them in the bucket" in taken.output, taken.output
        stamp = name[3:19]
        assert [n for n in stack.backups() if stamp in n] == [name, f"seal-{stamp}.txt"]
        assert not [n for n in stack.backups() if n.startswith("media-")]
        poll(lambda: stack.health(LIVE, "backup") == "healthy", 60, what="the backup service to be healthy")

        assert upload(browser, stack, "later.txt", b"after the backup\n", "text/plain").status_code == 302
        restored = stack.make("restore", f"NAME={name}", "CONFIRM=yes", timeout=TIMEOUT + 300)
        assert f"restored {name}" in restored.output, restored.output[-3000:]
        browser = signed_in(stack, "admin")
        after = links(browser)
        assert set(after) == set(kept), "the database is the backup's: the later upload's row is gone"
        # The bucket was not touched: the files the restored rows name are still there.
        fetched = stack.bucket.get(after["notes.txt"])
        assert fetched.status_code == 200 and fetched.content == b"Notes kept in the bucket\n"
