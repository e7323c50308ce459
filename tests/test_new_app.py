"""Issue 21, what a new user does first: add a Django app to a baked project and ship it. As root (the suite runs
as root here; on a server or in CI the checkout is often root's): `make up`, `startapp` in the development
container, a model, `make makemigrations`, a view, a template and a static file; the app's own tests.py run by
`make test`; `make watch` syncing a new package and ended by Ctrl-C; `make build-live`, `make deploy` and the
new page through nginx. Plain Compose, which builds for uid 1000, says how to rebuild before startapp fails.
Before: startapp and makemigrations failed with Permission denied (uid 1000 in a root checkout), tests.py was
never collected, every image build failed in collectstatic (ModuleNotFoundError: the .dockerignore allow-list
left the app out), Ctrl-C ended `make watch` with "Error 130", each build warned "uid 1000 is greater than
SYS_UID_MAX" and the stack built three identical images.
Needs a Docker engine (skipped without one, except under CI where that is a failure)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import subprocess
import termios
import time
from pathlib import Path

import pytest

from support import (
    DOMAIN,
    TIMEOUT,
    BackupProject,
    Browser,
    bake,
    poll,
    require,
    require_engine,
    run,
    stack_name,
)

pytestmark = pytest.mark.e2e
# Secrets and local files a user may have lying around: none may reach an image or the watch sync.
STRAYS = {
    ".env": "STRAY_VARIABLE=stray-env-secret\n",
    "backup-identity.txt": "AGE-SECRET-KEY-1STRAYIDENTITY\n",
    "tls/server.key": "-----BEGIN PRIVATE KEY-----\nstray\n",
    "backups/db-20250101T000000Z.dump": "stray dump\n",
}
APP = {
    "catalog/models.py": """from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name
""",
    "catalog/views.py": """from django.shortcuts import render

from .models import Item


def item_list(request):
    return render(request, "catalog/list.html", {"items": Item.objects.all()})
""",
    "catalog/urls.py": """from django.urls import path

from . import views

urlpatterns = [path("", views.item_list, name="item-list")]
""",
    "catalog/templates/catalog/list.html": """{% load static %}<!doctype html>
<html><head><title>Catalog</title><link rel="stylesheet" href="{% static 'catalog/catalog.css' %}"></head>
<body><p>Catalog: {{ items|length }} items</p></body></html>
""",
    "catalog/static/catalog/catalog.css": "body { color: #123456; }\n",
}
PASSING = """from django.test import TestCase

from .models import Item


class ItemTests(TestCase):
    def test_an_item_is_named_by_its_name(self):
        self.assertEqual(str(Item.objects.create(name="Lamp")), "Lamp")
"""
FAILING = (
    PASSING
    + """
    def test_that_fails_on_purpose(self):
        self.assertEqual(Item.objects.count(), 42)
"""
)


class NewAppProject(BackupProject):
    def dev_images(self) -> set[str]:
        listed = run(["docker", "images", "--format", "{{.Repository}}", f"{self.slug}-dev-*"]).stdout
        return set(listed.split())


def in_a_terminal(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    """Start a command in a new terminal of its own, as a user's shell runs it: Ctrl-C typed into it (\\x03)
    reaches its foreground processes as SIGINT. Returns the process and the terminal's other end."""
    leader, follower = pty.openpty()

    def controlling_terminal():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdin=follower, stdout=follower, stderr=follower, preexec_fn=controlling_terminal
    )
    os.close(follower)
    return process, leader


def read_terminal(leader: int, shown: bytearray, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if select.select([leader], [], [], 0.5)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closes when the command ends
                return
            if not chunk:
                return
            shown.extend(chunk)


@pytest.fixture(scope="module")
def project(cookies_session):
    require_engine()
    require(os.geteuid() == 0, "these steps are the root user's (the suite runs as root here)")
    # Celery too: the app, the worker and beat share the development image.
    path = bake(cookies_session, project_name=stack_name("E2E New App"), domain_name=DOMAIN, key_value_store="valkey")
    project = NewAppProject(path)
    project.remove()
    for name, text in STRAYS.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    try:
        yield project
    finally:
        print(project.logs("compose.yaml")[-3000:])
        print(project.logs("compose.prod.yaml")[-3000:])
        project.remove()
        run(
            ["docker", "rmi", "-f", *(f"{project.slug}-{name}:e2e" for name in ("app", "static", "offsite"))],
            check=False,
        )
        run(["docker", "rmi", "-f", *project.dev_images()], check=False)


class TestANewApp:
    def test_1_startapp_and_makemigrations_as_root_in_one_image_built_without_warnings(self, project):
        # Plain Compose without the owner's ids builds for uid 1000, which cannot write a checkout root owns: the
        # container says so, and how to rebuild, before startapp fails.
        env = {k: v for k, v in project.env("compose.yaml").items() if k not in ("UID", "GID")}
        startapp = ["docker", "compose", "run", "--rm", "app", "python", "manage.py", "startapp", "catalog"]
        refused = run(startapp, cwd=project.path, env=env, timeout=TIMEOUT + 1200, check=False)
        assert refused.returncode != 0 and "Permission denied" in refused.stderr, refused.stderr[-3000:]
        assert "is not writable by this container's uid 1000" in refused.stderr, refused.stderr[-3000:]
        assert "make up, or env UID=0 GID=0 docker compose up --build --wait" in refused.stderr
        assert not (project.path / "catalog").exists()

        up = project.make("up", timeout=TIMEOUT + 1200, file="compose.yaml")
        assert "SYS_UID_MAX" not in up.output and "useradd warning" not in up.output, up.output[-3000:]
        # One image for the app, the worker and beat (and nginx's own).
        assert project.dev_images() == {f"{project.slug}-dev-app", f"{project.slug}-dev-nginx"}
        images = {
            service: project.inspect(project.container("compose.yaml", service))["Image"]
            for service in ("app", "worker", "beat")
        }
        assert len(set(images.values())) == 1, images

        # As the user types it after `make up`: plain Compose, in the development container.
        started = project.compose("compose.yaml", "run", "--rm", "app", "python", "manage.py", "startapp", "catalog")
        assert started.returncode == 0
        catalog = project.path / "catalog"
        assert (catalog / "tests.py").exists() and (catalog / "migrations/__init__.py").exists()
        owner = project.path.stat()
        assert (catalog.stat().st_uid, catalog.stat().st_gid) == (owner.st_uid, owner.st_gid)

        for name, text in APP.items():
            (project.path / name).parent.mkdir(parents=True, exist_ok=True)
            (project.path / name).write_text(text)
        settings = project.path / "config/settings.py"
        settings.write_text(settings.read_text().replace('    "users",\n', '    "users",\n    "catalog",\n', 1))
        urls = project.path / "config/urls.py"
        urls.write_text(
            urls.read_text().replace(
                '    path("admin/", ', '    path("catalog/", include("catalog.urls")),\n    path("admin/", ', 1
            )
        )
        made = project.make("makemigrations", file="compose.yaml")
        migration = catalog / "migrations/0001_initial.py"
        assert migration.exists(), made.output
        assert "create model item" in made.output.lower()
        assert migration.stat().st_uid == owner.st_uid

    def test_2_tests_in_the_apps_tests_py_run_and_a_failing_one_fails_make_test(self, project):
        tests = project.path / "catalog/tests.py"
        tests.write_text(PASSING)
        passed = project.make("test", file="compose.yaml")
        assert re.search(r"^catalog/tests\.py \.", passed.stdout, re.M), passed.stdout[-3000:]
        tests.write_text(FAILING)
        try:
            failed = project.make("test", check=False, file="compose.yaml")
            assert failed.returncode != 0, failed.stdout[-3000:]
            assert "FAILED catalog/tests.py::ItemTests::test_that_fails_on_purpose" in failed.stdout
        finally:
            tests.write_text(PASSING)

    def test_3_make_watch_syncs_a_new_package_keeps_the_secrets_out_and_ends_cleanly_on_ctrl_c(self, project):
        project.make("down", file="compose.yaml")
        process, terminal = in_a_terminal(["make", "watch"], project.path, project.env("compose.yaml"))
        shown = bytearray()
        try:
            deadline = time.monotonic() + TIMEOUT + 900
            while b"Watch enabled" not in shown and process.poll() is None and time.monotonic() < deadline:
                read_terminal(terminal, shown, 2)
            assert b"Watch enabled" in shown, shown.decode(errors="replace")[-3000:]
            # A new top-level package, written after watching started, reaches the app and the worker.
            (project.path / "reports").mkdir()
            (project.path / "reports/__init__.py").write_text('"""Reports, added while make watch runs."""\n')
            (project.path / "catalog/extra.py").write_text("EXTRA = 1\n")
            (project.path / ".env").write_text(STRAYS[".env"] + "# saved while make watch runs\n")

            def synced(service: str) -> bool:
                read_terminal(terminal, shown, 0.5)  # keep the terminal drained
                check = "test -f /app/reports/__init__.py && test -f /app/catalog/extra.py"
                return (
                    project.compose("compose.yaml", "exec", "-T", service, "sh", "-c", check, check=False).returncode
                    == 0
                )

            poll(lambda: synced("app"), 90, what="the new package to be synced into the app")
            poll(lambda: synced("worker"), 90, what="the new package to be synced into the worker")
            names = ["backup-identity.txt", ".env", "server.key", "*.dump"]
            pattern = [arg for name in names for arg in ("-o", "-name", name)][1:]
            listing = project.compose("compose.yaml", "exec", "-T", "app", "find", "/app", *pattern).stdout
            assert listing.strip() == "", f"secrets in the watched container: {listing}"
            os.write(terminal, b"\x03")  # Ctrl-C
            read_terminal(terminal, shown, 30)
            assert process.wait(timeout=60) == 0, shown.decode(errors="replace")[-3000:]
            text = shown.decode(errors="replace")
            assert "Error 130" not in text and "Interrupt" not in text, text[-3000:]
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
                process.wait(timeout=60)
            os.close(terminal)
            project.make("down", check=False, file="compose.yaml")

    def test_4_the_live_images_build_and_the_new_page_answers_through_nginx(self, project):
        built = project.make("build-live", timeout=1800)
        assert "ModuleNotFoundError" not in built.output
        files = run(["docker", "run", "--rm", "--entrypoint", "find", f"{project.slug}-app:e2e", "/app", "-type", "f"])
        files = files.stdout.split()
        assert "/app/catalog/migrations/0001_initial.py" in files and "/app/reports/__init__.py" in files
        leaked = [name for name in files if name.removeprefix("/app/") in STRAYS or "/.envs" in name]
        assert leaked == [], f"secrets in the app image: {leaked}"

        project.make("deploy", timeout=TIMEOUT + 300)
        browser = Browser(project.live_port)
        page = poll(
            lambda: (response := browser.get("/catalog/")).status_code == 200 and response,
            60,
            what="the new app's page",
        )
        assert "Catalog: 0 items" in page.text, page.text[:2000]
        stylesheet = re.search(r'href="(/static/catalog/catalog\.[0-9a-f]{12}\.css)"', page.text)
        assert stylesheet, page.text[:2000]
        css = browser.get(stylesheet.group(1))
        assert css.status_code == 200 and "#123456" in css.text
