"""The baked stack, built and run under Docker Compose exactly as a user would, for a project with Celery
and Redis and one without. Numbers in the test names follow issue #3's list.

Each class bakes one project, builds its images once, and shares them across its tests, which run in order
against one stack. The whole file runs in one xdist worker (--dist loadfile), in order, one class after the
other: two parallel image builds gain little on two cores, and interleaved classes would tear their stacks
down and up again. Everything a class creates is removed when it ends (`down -v`, and its images).
Needs a Docker engine (skipped without one, except under CI where that is a failure)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

import pythons
from support import (
    DOMAIN,
    LIVE,
    SMTP_CATCHER,
    STRAYS,
    TIMEOUT,
    WATCH,
    Browser,
    Project,
    bake,
    clean_env,
    env_file,
    image_files,
    poll,
    require_engine,
    run,
    stack_name,
)

pytestmark = pytest.mark.e2e
# A Sentry stand-in for the e2e tests, on the python stand-in: it accepts every envelope the SDK posts and prints
# it to its log as one JSON line (the request's path and its decompressed body).
SENTRY_RECEIVER = {
    "Dockerfile": """FROM python:3.13-slim
COPY receiver.py /receiver.py
USER nobody
CMD ["python", "-u", "/receiver.py"]
""",
    "receiver.py": """import gzip, http.server, json, zlib


class Envelopes(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        encoding = self.headers.get("Content-Encoding", "")
        body = gzip.decompress(body) if encoding == "gzip" else zlib.decompress(body) if encoding == "deflate" else body
        print(json.dumps({"path": self.path, "body": body.decode()}), flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")


http.server.ThreadingHTTPServer(("0.0.0.0", 8000), Envelopes).serve_forever()
""",
}
# The live app image plus a view that fails, for the Sentry test only: settings that extend the product's with
# one more URL. The product itself has no such endpoint.
FAILING_VIEW = {
    "e2e_settings.py": "from config.settings import *  # noqa: F403\n\nROOT_URLCONF = 'e2e_urls'\n",
    "e2e_urls.py": """from django.urls import path

from config.urls import urlpatterns


def fail(request):
    raise RuntimeError("e2e: an error raised in a view")


urlpatterns = [path("e2e/error/", fail), *urlpatterns]
""",
}


@pytest.fixture(scope="class")
def project(request, cookies_session):
    """The class's project, baked and with its four images built once."""
    require_engine()
    options = dict(request.cls.options)
    # Two runs of the same class on one engine would share compose project, volume and image names:
    options["project_name"] = stack_name(options["project_name"])
    project = Project(bake(cookies_session, domain_name=DOMAIN, **options))
    project.remove()  # whatever an interrupted earlier run left behind (volumes hold old passwords)
    for name, text in STRAYS.items():
        (project.path / name).write_text(text)
    started = time.monotonic()
    try:
        for target in ("appbuilder", "staticbuilder"):
            run(
                ["docker", "build", "--target", target, "-t", project.images[target], "."],
                cwd=project.path,
                timeout=1200,
            )
        run(["make", "build-live", "TAG=e2e"], cwd=project.path, timeout=1200)
        print(f"\n[e2e] {project.slug}: four targets built in {time.monotonic() - started:.0f}s")
        yield project
    finally:
        project.remove()


@pytest.fixture(scope="class")
def live(project):
    """The live stack after the documented deploy steps: migrate, then up."""
    started = time.monotonic()
    project.run_once("app", "python", "manage.py", "migrate", "--noinput")
    project.up_live()
    print(f"\n[e2e] {project.slug}: live stack migrated and healthy in {time.monotonic() - started:.0f}s")
    yield Browser(project.live_port)
    print(project.logs("compose.prod.yaml")[-6000:])  # shown by pytest when a test failed
    project.live("down", "-v", "--remove-orphans", "--timeout", "5", check=False)


ADMIN_PASSWORD = "e2e-Password-1"


@pytest.fixture(scope="class")
def admin(request, project, live) -> str:
    """The superuser, made by the README's createsuperuser step; what it signs in with (its email address, or
    "admin" when users sign in by username)."""
    by_username = request.cls.options.get("username_type") == "username"
    project.run_once(
        "-e",
        f"DJANGO_SUPERUSER_PASSWORD={ADMIN_PASSWORD}",
        "app",
        "python",
        "manage.py",
        "createsuperuser",
        "--noinput",
        *(["--username", "admin"] if by_username else []),
        "--email",
        "admin@example.com",
    )
    return "admin" if by_username else "admin@example.com"


def signed_in(project, admin: str) -> Browser:
    """A browser signed in to the admin as `admin`."""
    browser = Browser(project.live_port)
    login = browser.post_form("/admin/login/?next=/admin/", {"username": admin, "password": ADMIN_PASSWORD})
    assert login.status_code == 302, f"login failed ({login.status_code}): {project.logs(LIVE, 'app')[-3000:]}"
    return browser


def upload(project, browser: Browser, name: str, content: bytes) -> str:
    """Add a document through the admin; the /media/ path the home page links it by."""
    added = browser.post_form(
        f"/admin/{project.slug}/document/add/",
        {"title": name, "_save": "Save"},
        files={"file": (name, content, "text/plain")},
    )
    assert added.status_code == 302, added.text[:1000]
    stem = re.escape(name.rsplit(".", 1)[0])
    link = re.search(rf'href="(/media/documents/\d{{4}}/\d{{2}}/{stem}[^"]*\.txt)"', browser.get("/").text)
    assert link, "the home page should link the uploaded document"
    return link.group(1)


@pytest.fixture(scope="class")
def css_path(live) -> str:
    """The admin stylesheet, by the hashed name its login page links."""
    css = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', live.get("/admin/login/").text)
    assert css, "the admin should link its CSS by a hashed name"
    return css.group(1)


@pytest.fixture(scope="class")
def media_path(project, admin) -> str:
    """A document in the media volume, uploaded through the admin."""
    return upload(project, signed_in(project, admin), "e2e-media.txt", b"in the media volume\n")


class Stack:
    """A project to bake (its answers) and what follows from them; subclasses add the checks."""

    options: dict[str, str] = {}

    @property
    def with_celery(self) -> bool:
        return self.options["use_celery"] == "y"

    @property
    def store(self) -> str | None:
        """The key-value store's service: valkey, redis, or None."""
        return None if self.options["key_value_store"] == "none" else self.options["key_value_store"]


class StackChecks(Stack):
    """The checks; subclasses say which project to bake."""

    def test_1_every_dockerfile_target_builds(self, project):
        for target, image in project.images.items():
            config = json.loads(run(["docker", "image", "inspect", image]).stdout)[0]["Config"]
            if target == "applayer":
                assert config["User"] == "10001:10001"
                assert config["Entrypoint"] == ["python", "/app/wait_entrypoint.py"]
            if target == "staticlayer":
                assert config["User"] == "101:101"
        # The nginx image carries the collected static files, and nothing of the app's code.
        listing = run(
            [
                "docker",
                "run",
                "--rm",
                "--entrypoint",
                "sh",
                project.images["staticlayer"],
                "-c",
                "ls /srv/static/admin/css/ && ls /srv/static/staticfiles.json && ls / && ls /srv",
            ]
        ).stdout
        assert "base.css" in listing and "staticfiles.json" in listing
        assert "manage.py" not in listing and "app\n" not in listing
        # The app image holds the code, and none of the secrets lying around in the project.
        files = run(
            ["docker", "run", "--rm", "--entrypoint", "find", project.images["applayer"], "/app", "-type", "f"]
        ).stdout.split()
        assert "/app/manage.py" in files and f"/app/{project.slug}/models.py" in files
        # Nor the private key that decrypts the backups (the hook writes it beside the code, for the user to move).
        assert (project.path / "backup-identity.txt").exists()
        secret_names = {*STRAYS, "prod.env", "backup-identity.txt"}
        leaked = [path for path in files if path.rsplit("/", 1)[1] in secret_names or "/.envs" in path]
        assert leaked == [], f"secrets in the app image: {leaked}"

    def test_2_development_stack_serves_and_reloads_on_edit(self, project):
        compose = "compose.yaml"
        try:
            project.compose(
                compose, "up", "-d", "--build", "--wait", "--wait-timeout", str(TIMEOUT), timeout=TIMEOUT + 900
            )
            base = f"http://127.0.0.1:{project.ports['APP_PORT']}"
            home = requests.get(base + "/", timeout=30)
            assert home.status_code == 200 and "It works" in home.text
            assert requests.get(base + "/healthz", timeout=30).json() == {"status": "ok"}
            # The production nginx image was built and runs in development too.
            behind_nginx = requests.get(f"http://127.0.0.1:{project.ports['NGINX_PORT']}/", timeout=30)
            assert behind_nginx.status_code == 200 and "It works" in behind_nginx.text
            # `make test`: the project's own suite in the development image, which has the dev tools. Its exit
            # code, and the summary line (tests ran, none failed).
            tests = run(["make", "test"], cwd=project.path, env=project.env(compose), timeout=900, check=False)
            summary = r"^=+ \d+ passed(, \d+ (skipped|warnings?|deselected))* in [\d.]+s"  # no failed, no errors
            assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr
            assert re.search(summary, tests.stdout, re.M), tests.stdout[-3000:] + tests.stderr

            app = project.container(compose, "app")
            started_at = project.inspect(app)["State"]["StartedAt"]
            health = project.path / project.slug / "health.py"
            health.write_text(health.read_text().replace('{"status": "ok"}', '{"status": "ok", "edited": True}'))
            poll(
                lambda: requests.get(base + "/healthz", timeout=5).json().get("edited"),
                60,
                what="runserver to reload the edited health.py",
            )
            assert project.inspect(app)["State"]["StartedAt"] == started_at, "the container was restarted"
        finally:
            print(project.logs(compose)[-3000:])
            project.compose(compose, "down", "-v", "--remove-orphans", "--rmi", "local", "--timeout", "5", check=False)

    def test_2b_watch_syncs_the_source_and_rebuilds_on_a_dependency_change(self, project, tmp_path):
        """Issue 5, `make watch`: compose.watch.yaml over compose.yaml under `docker compose watch`. A saved
        file reaches the running app with no bind mount and no restart (the worker is restarted), the secrets
        file never reaches it, and a new dependency rebuilds the image and recreates the app."""
        base = f"http://127.0.0.1:{project.ports['APP_PORT']}"
        services = ["app"] + (["worker"] if self.with_celery else [])
        health = project.path / project.slug / "health.py"
        secrets = project.path / ".envs/prod.env"
        originals = {
            path: path.read_text()
            for path in (health, secrets, project.path / "pyproject.toml", project.path / "uv.lock")
        }
        log = tmp_path / "watch.log"
        before: dict[str, dict] = {}
        created: list[Path] = []  # files the test adds to the source, removed at the end

        def in_app(*command: str, service: str = "app") -> bool:
            return project.compose(WATCH, "exec", "-T", service, *command, check=False).returncode == 0

        def the_one(service: str) -> str | None:
            """The service's container once there is only one (a recreated container and its successor overlap
            for a moment). Listed by label: `compose ps` inspects each container and fails on one just removed."""
            labels = [
                f"label=com.docker.compose.{key}" for key in (f"project={project.slug}-dev", f"service={service}")
            ]
            filters = [arg for label in labels for arg in ("--filter", label)]
            ids = run(["docker", "ps", "-a", "-q", "--no-trunc", *filters], check=False).stdout.split()
            return ids[0] if len(ids) == 1 else None

        started = time.monotonic()
        with log.open("w") as output:
            watcher = subprocess.Popen(
                project.command(WATCH, "watch"),
                cwd=project.path,
                env=project.env(WATCH),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            poll(
                lambda: "Watch enabled" in log.read_text(errors="replace") or watcher.poll() is not None,
                TIMEOUT + 900,
                interval=2,
                what="docker compose watch to build, start the stack and watch",
            )
            assert watcher.poll() is None, (
                f"compose watch exited {watcher.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
            )
            poll(lambda: requests.get(base + "/healthz", timeout=5).ok, TIMEOUT, what="the app to answer")
            print(f"\n[e2e] {project.slug}: watching {time.monotonic() - started:.0f}s after compose watch started")
            for service in services:
                before[service] = project.inspect(project.container(WATCH, service))
                mounts = {(mount["Type"], mount["Destination"]) for mount in before[service]["Mounts"]}
                assert mounts == {("volume", "/srv/media")}, f"{service} should not mount the source: {mounts}"
            assert not in_app("python", "-c", "import itsdangerous"), "the dependency this test adds is there already"
            # The image's source belongs to the app's user (CODE_OWNER), so Compose, which deletes as that user,
            # can delete and rename synced files.
            ids = project.compose(WATCH, "exec", "-T", "app", "sh", "-c", "echo $(id -u):$(id -g)").stdout.strip()
            owner = project.compose(WATCH, "exec", "-T", "app", "stat", "-c", "%u:%g", "/app/manage.py").stdout
            assert owner.strip() == ids, f"/app/manage.py belongs to {owner.strip()}, the app runs as {ids}"

            # A saved file is copied into the running containers; the secrets file, saved first, is not.
            secrets.write_text(originals[secrets] + "# saved while compose watch runs\n")
            marker = "def healthz(request: HttpRequest) -> JsonResponse:\n    return JsonResponse({"
            assert marker in originals[health]
            health.write_text(originals[health].replace(marker, marker + '"synced": True, '))
            saved = time.monotonic()
            poll(
                lambda: requests.get(base + "/healthz", timeout=5).json().get("synced"),
                60,
                what="the app to serve the synced health.py",
            )
            print(f"[e2e] {project.slug}: a saved file was served {time.monotonic() - saved:.1f}s later")
            app = project.inspect(project.container(WATCH, "app"))
            assert (app["Id"], app["State"]["StartedAt"]) == (
                before["app"]["Id"],
                before["app"]["State"]["StartedAt"],
            ), "the app was restarted: runserver should reload the synced file by itself"
            leaked = project.compose(WATCH, "exec", "-T", "app", "ls", "-A", "/app/.envs", check=False).stdout
            assert "prod.env\n" not in leaked, f".envs/prod.env was copied into the container: {leaked}"
            if self.with_celery:
                # Celery does not reload: sync+restart copies the file in, then restarts the worker.
                synced_file = f"/app/{project.slug}/health.py"
                poll(
                    lambda: in_app("grep", "-q", "synced", synced_file, service="worker"), 60, what="the worker's copy"
                )
                poll(
                    lambda: (
                        (state := project.inspect(before["worker"]["Id"])["State"])["Running"]
                        and state["StartedAt"] != before["worker"]["State"]["StartedAt"]
                    ),
                    60,
                    what="compose watch to restart the worker",
                )

            # A new file is copied in; renamed on the host, it is renamed in the container; deleted, it goes.
            probe = project.path / project.slug / "watch_probe.py"
            renamed = probe.with_name("watch_probe_renamed.py")
            created.extend([probe, renamed])
            in_container = f"/app/{project.slug}/"

            def synced(present: str | None, absent: str | None) -> bool:
                script = (f"test -f {in_container}{present}" if present else "true") + (
                    f" && test ! -e {in_container}{absent}" if absent else ""
                )
                return in_app("sh", "-c", script)

            probe.write_text('"""Written by the e2e test of compose watch."""\n')
            poll(lambda: synced("watch_probe.py", None), 60, what="a new file to be synced")
            probe.rename(renamed)
            poll(lambda: synced("watch_probe_renamed.py", "watch_probe.py"), 60, what="a rename to be synced")
            assert project.compose(WATCH, "exec", "-T", "app", "cat", in_container + "watch_probe_renamed.py").stdout
            renamed.unlink()
            poll(lambda: synced(None, "watch_probe_renamed.py"), 60, what="a deletion to be synced")

            # A new dependency: uv updates pyproject.toml and uv.lock, compose watch rebuilds the image and
            # recreates the services built from it; the database and the store keep running untouched.
            untouched = {
                service: project.inspect(project.container(WATCH, service))
                for service in ["db"] + ([self.store] if self.store else [])
            }
            add = pythons.uv(self.options["python_version"], project.path, "add", "--no-sync", "itsdangerous==2.2.0")
            run(add, cwd=project.path, env=clean_env(), timeout=300)
            added = time.monotonic()

            app = project.inspect(
                poll(
                    lambda: (new := the_one("app")) != before["app"]["Id"] and new,
                    TIMEOUT + 600,
                    interval=2,
                    what="compose watch to rebuild the image and recreate the app",
                )
            )
            print(f"[e2e] {project.slug}: app rebuilt and recreated {time.monotonic() - added:.0f}s after `uv add`")
            assert app["Image"] != before["app"]["Image"]
            assert project.exit_code(app["Image"], "python", "-c", "import itsdangerous") == 0
            for service in ["worker", "beat"] if self.with_celery else []:
                # One image (issue 21.11): the worker and beat, which run the app's, are recreated on the rebuilt
                # image and started again.
                poll(
                    lambda service=service: (
                        (container := the_one(service))
                        and (state := project.inspect(container))["Image"] == app["Image"]
                        and state["State"]["Running"]
                    ),
                    TIMEOUT,
                    what=f"the {service} to run the rebuilt image",
                )
            poll(
                lambda: requests.get(base + "/healthz", timeout=5).json().get("synced"),
                TIMEOUT,
                what="the rebuilt app to answer",
            )
            print(f"[e2e] {project.slug}: the rebuilt app answered {time.monotonic() - added:.0f}s after `uv add`")
            for service, earlier in untouched.items():
                now = project.inspect(project.container(WATCH, service))
                assert (now["Id"], now["State"]["StartedAt"], now["State"]["Running"]) == (
                    earlier["Id"],
                    earlier["State"]["StartedAt"],
                    True,
                ), f"the rebuild recreated or restarted {service}"
            assert in_app("python", "-c", "import itsdangerous")
        finally:
            if watcher.poll() is None:
                watcher.send_signal(signal.SIGINT)
                try:
                    watcher.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    watcher.kill()
                    watcher.wait()
            print(log.read_text(errors="replace")[-3000:])
            print(project.logs(WATCH)[-3000:])
            project.compose(WATCH, "down", "-v", "--remove-orphans", "--rmi", "local", "--timeout", "5", check=False)
            # The images the rebuild replaced are untagged now, which `--rmi local` leaves behind.
            old = [state["Image"] for state in before.values()]
            if old:
                run(["docker", "rmi", "-f", *old], check=False)
            for path, text in originals.items():
                path.write_text(text)
            for path in created:
                path.unlink(missing_ok=True)

    def test_3a_live_pages_and_readiness_through_nginx(self, project, live):
        try:
            home = live.get("/")
        except requests.RequestException:
            for command in (
                ["exec", "-T", "nginx", "getent", "hosts", "app"],
                ["exec", "-T", "nginx", "wget", "-q", "-O-", "-T", "5", "http://app:8000/healthz"],
                ["ps"],
            ):
                result = project.live(*command, check=False)
                print(command, result.returncode, result.stdout, result.stderr)
            print(run(["docker", "network", "ls"]).stdout)
            print(run(["docker", "ps", "-a"]).stdout)
            raise
        assert home.status_code == 200, project.logs("compose.prod.yaml", "app", "nginx")
        assert "serving this page over HTTPS" in home.text
        ready = live.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["database"] == "ok"
        if self.store:
            assert ready.json()[self.store] == "ok"
        assert set(ready.json()) == {"status", "database"} | ({self.store} if self.store else set())
        # A visitor on plain HTTP is sent to HTTPS.
        plain = requests.get(
            f"http://127.0.0.1:{project.live_port}/", headers={"Host": DOMAIN}, allow_redirects=False, timeout=30
        )
        assert plain.status_code == 301 and plain.headers["Location"] == f"https://{DOMAIN}/"

    def test_3b_admin_css_comes_from_nginx_cached_and_gzipped(self, project, live):
        login = live.get("/admin/login/")
        assert login.status_code == 200
        css = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login.text)
        assert css, "the admin should link its CSS by a hashed name"
        response = live.get(css.group(1), headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200
        assert response.headers["Content-Encoding"] == "gzip"
        assert "max-age=31536000" in response.headers["Cache-Control"]
        assert "body" in response.text
        # Pages are not compressed: they carry the CSRF token next to text a visitor chooses (BREACH).
        page = live.get("/admin/login/", headers={"Accept-Encoding": "gzip"})
        assert page.status_code == 200 and "Content-Encoding" not in page.headers
        # Served from the nginx image: the app never saw the request.
        assert css.group(1) not in project.logs("compose.prod.yaml", "app")

    def test_3c_admin_login_with_csrf_and_media_upload_served_by_nginx(self, project, live, admin):
        login = live.post_form(
            "/admin/login/?next=/admin/", {"username": admin, "password": ADMIN_PASSWORD, "next": "/admin/"}
        )
        assert login.status_code == 302, (
            f"login failed ({login.status_code}): {project.logs('compose.prod.yaml', 'app')}"
        )
        assert login.headers["Location"] == "/admin/"
        assert "Site administration" in live.get("/admin/").text

        content = b"uploaded through the admin, served by nginx\n"
        path = upload(project, live, "e2e-upload.txt", content)
        media = live.get(path)
        assert media.status_code == 200 and media.content == content
        assert path not in project.logs("compose.prod.yaml", "app")

    def test_4_celery_task_runs_in_the_worker(self, project, live, admin):
        services = project.live("config", "--services").stdout.split()
        if not self.with_celery:
            # Pruned, also in the running stack: no worker, no broker.
            assert "worker" not in services and "tasks" not in live.get("/").text
            return
        assert {"worker", self.store} <= set(services)
        # A visitor who is not staff cannot queue a task: sent to the login.
        visitor = Browser(project.live_port)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', visitor.get("/admin/login/").text).group(1)
        refused = visitor.post("/tasks/", {"csrfmiddlewaretoken": token}, referer="/")
        assert refused.status_code == 302 and refused.headers["Location"].startswith("/admin/login/")
        # Staff (the admin created in test_3c) can: the home page's form posts to /tasks/.
        staff = Browser(project.live_port)
        login = staff.post_form("/admin/login/", {"username": admin, "password": ADMIN_PASSWORD, "next": "/"})
        assert login.status_code == 302, login.text[:500]
        page = staff.get("/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        queued = staff.post("/tasks/", {"csrfmiddlewaretoken": token}, referer="/")
        assert queued.status_code == 302, queued.text[:500]
        status_path = queued.headers["Location"]
        assert status_path.startswith("/tasks/"), status_path
        status = poll(
            lambda: (s := staff.get(status_path).json())["state"] == "SUCCESS" and s,
            90,
            what="the Celery task to succeed",
        )
        worker_host = project.inspect(project.container("compose.prod.yaml", "worker"))["Config"]["Hostname"]
        assert status["result"]["worker"] == f"celery@{worker_host}"
        assert status["result"]["documents"] >= 1

        # The worker dies (its main process exits; Docker's kill would count as a manual stop): the restart
        # policy brings it back without a manual step, and queued tasks run again.
        worker = project.container("compose.prod.yaml", "worker")
        before = project.inspect(worker)["State"]
        project.live("exec", "-T", "worker", "sh", "-c", "kill -TERM 1")
        poll(
            lambda: (
                (state := project.inspect(worker)["State"])["Running"] and state["StartedAt"] != before["StartedAt"]
            ),
            120,
            what="the restart policy to restart the worker",
        )
        restarted = time.monotonic()
        queued = staff.post("/tasks/", {"csrfmiddlewaretoken": token}, referer="/")
        poll(
            lambda: staff.get(queued.headers["Location"]).json()["state"] == "SUCCESS",
            120,
            what="a task queued after the restart to succeed",
        )
        print(
            f"\n[e2e] {project.slug}: worker restarted by its policy; a task ran {time.monotonic() - restarted:.1f}s"
            " after"
        )

    def test_4b_a_forgotten_password_is_reset_through_a_mailed_link(self, project, live, admin, tmp_path):
        """The live site mails the reset link through EMAIL_URL's SMTP server (one this test runs on the stack's
        network); the link, opened through nginx, sets a new password, and the admin signs in with it."""
        catcher = f"{project.slug}-smtp"
        # Without EMAIL_URL the reset fails loudly, naming the variable, and nothing pretends to be sent.
        failed = live.post_form("/admin/password-reset/", {"email": "admin@example.com"})
        # The visitor sees the usual answer (it never tells whether an address has an account); the log has the error.
        assert failed.status_code == 302
        poll(
            lambda: all(
                line in project.logs("compose.prod.yaml", "app")
                for line in ("Failed to send password reset email", "EMAIL_URL is not set, so this mail cannot be sent")
            ),
            30,
            what="the app to log the failed reset mail",
        )
        (tmp_path / "Dockerfile").write_text(SMTP_CATCHER)
        run(["docker", "build", "-t", f"{catcher}:e2e", str(tmp_path)], timeout=600)
        app = project.inspect(project.container("compose.prod.yaml", "app"))
        network = next(iter(app["NetworkSettings"]["Networks"]))
        run(["docker", "rm", "-f", catcher], check=False)
        run(
            ["docker", "run", "-d", "--name", catcher, "--network", network, "--network-alias", "mail"]
            + [f"{catcher}:e2e"]
        )
        env_file = project.path / ".envs/prod.env"
        original = env_file.read_text()
        try:
            env_file.write_text(original + "EMAIL_URL=smtp://mail:1025\n")
            project.up_live()  # the app is recreated with the new variable
            sent = live.post_form("/admin/password-reset/", {"email": "admin@example.com"})
            assert sent.status_code == 302, project.logs("compose.prod.yaml", "app")
            assert sent.headers["Location"] == "/accounts/password-reset/sent/"
            mail = poll(
                lambda: "/accounts/reset/" in (logs := run(["docker", "logs", catcher]).stdout) and logs,
                60,
                what="the reset mail to reach the SMTP server",
            )
            assert "To: admin@example.com" in mail
            # Django 6.1 sends long lines quoted-printable: undo its soft line breaks ("=" at a line's end).
            mail = re.sub(r"=\r?\n", "", mail)
            link = re.search(rf"https://{re.escape(DOMAIN)}(/accounts/reset/[^/\s]+/[^/\s]+/)", mail)
            assert link, mail[-3000:]
            link = link.group(1)
            visitor = Browser(project.live_port)
            form = visitor.get(link)
            assert form.status_code == 302, form.text[:500]  # to the same page without the token in the URL
            new = "e2e-Reset-Password-2"
            done = visitor.post_form(form.headers["Location"], {"new_password1": new, "new_password2": new})
            assert done.status_code == 302 and done.headers["Location"] == "/accounts/reset/done/", done.text[:500]
            login = Browser(project.live_port).post_form(
                "/admin/login/", {"username": admin, "password": new, "next": "/admin/"}
            )
            assert login.status_code == 302 and login.headers["Location"] == "/admin/"
        finally:
            env_file.write_text(original)
            project.up_live()
            run(["docker", "rm", "-f", catcher], check=False)
            run(["docker", "rmi", "-f", f"{catcher}:e2e"], check=False)

    def test_6_app_worker_and_nginx_run_as_non_root(self, project, live):
        services = ["app", "nginx"] + (["worker"] if self.with_celery else [])
        for service in services:
            uid = project.live("exec", "-T", service, "id", "-u").stdout.strip()
            assert uid not in ("", "0"), f"{service} runs as root"
        # Root owns the live image's code: the app can read it, not change it.
        owner = project.live("exec", "-T", "app", "stat", "-c", "%u:%g", "/app/manage.py", "/opt/venv/bin/gunicorn")
        assert owner.stdout.split() == ["0:0", "0:0"], owner.stdout

    def test_3d_static_and_media_are_served_while_the_app_is_down(self, project, live, css_path, media_path):
        project.live("stop", "app")
        try:
            assert live.get(css_path).status_code == 200
            assert live.get(media_path).status_code == 200
            down = live.get("/")
            # 502 when the connection is refused, 504 when the stopped container's address times out.
            assert down.status_code in (502, 504) and "Back in a moment" in down.text
        finally:
            project.up_live()

    # ---- issue 4: safe by default, faults survived, bad input refused --------------------------------

    def test_8a_no_secret_in_any_image_layer(self, project):
        secrets = {
            key: value
            for name in ("prod", "db", "store")
            if (project.path / f".envs/{name}.env").exists()
            for key, value in env_file(project.path / f".envs/{name}.env").items()
            if key in ("SECRET_KEY", "POSTGRES_PASSWORD", "APP_DB_PASSWORD", "REDIS_PASSWORD")
        }
        assert {"SECRET_KEY", "POSTGRES_PASSWORD", "APP_DB_PASSWORD"} <= set(secrets)
        for target in ("applayer", "staticlayer"):
            image = project.images[target]
            history = run(["docker", "history", "--no-trunc", image]).stdout
            saved = subprocess.run(["docker", "save", image], capture_output=True, timeout=600, check=True).stdout
            assert len(saved) > 1_000_000, f"docker save {image} returned too little to scan"
            files = list(image_files(saved))
            assert any("manage.py" in name or "nginx.conf" in name for name, _ in files), f"no layer files in {image}"
            for key, value in secrets.items():
                assert value not in history, f"{key} is in the history of {image}"
                for name, data in files:
                    assert value.encode() not in data, f"{key} is in {name} of {image}"

    def test_8b_live_containers_are_locked_down(self, project, live):
        hardened = ["app", "nginx"] + (["worker"] if self.with_celery else [])
        for service in hardened:
            status = project.live("exec", "-T", service, "cat", "/proc/1/status").stdout
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0, f"{service} keeps capabilities"
            assert fields["NoNewPrivs"].strip() == "1", f"{service} may gain privileges"
            write = project.live("exec", "-T", service, "touch", "/probe", check=False)
            assert write.returncode != 0 and "Read-only file system" in write.stderr, f"{service}: writable root"
            tmp = project.live("exec", "-T", service, "touch", "/tmp/probe", check=False)
            assert tmp.returncode == 0, f"{service}: /tmp must stay writable (tmpfs)"
        for service in ["db", "app"] + ([self.store] if self.store else []) + (["worker"] if self.with_celery else []):
            bindings = project.inspect(project.container("compose.prod.yaml", service))["HostConfig"]["PortBindings"]
            published = {port: hosts for port, hosts in (bindings or {}).items() if hosts}
            assert not published, f"{service} is published on the host: {published}"

        # Issue 15: the database and the store get only their own variables, no root and (almost) no
        # capabilities: postgres runs as its user from the start; the store keeps CHOWN, SETGID and SETUID
        # only to hand /data to its user and switch to it, and none once the server runs.
        chown, setgid, setuid = 1 << 0, 1 << 6, 1 << 7
        allowed = {"db": 0} | ({self.store: chown | setgid | setuid} if self.store else {})
        secret_key = env_file(project.path / ".envs/prod.env")["SECRET_KEY"]
        for service, bounding in allowed.items():
            environment = project.live("exec", "-T", service, "env").stdout
            assert "SECRET_KEY" not in environment and secret_key not in environment, f"{service} sees SECRET_KEY"
            assert "DATABASE_URL" not in environment, f"{service} sees the app's settings"
            status = project.live("exec", "-T", service, "cat", "/proc/1/status").stdout
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            assert int(fields["CapBnd"], 16) == bounding, f"{service}: bounding set {fields['CapBnd']}"
            assert int(fields["CapEff"], 16) == 0, f"{service} runs with capabilities {fields['CapEff']}"
            assert fields["Uid"].split()[0] != "0", f"{service} runs as root"
            assert fields["NoNewPrivs"].strip() == "1", f"{service} may gain privileges"
        if self.store:
            write = project.live("exec", "-T", self.store, "touch", "/probe", check=False)
            assert write.returncode != 0 and "Read-only file system" in write.stderr, f"{self.store}: writable root"
            # Its password is no command line's (every process on the host can read those), and still required.
            password = env_file(project.path / ".envs/store.env")["REDIS_PASSWORD"]
            cmdlines = project.live(
                "exec", "-T", self.store, "sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"
            ).stdout
            assert f"{self.store}-server" in cmdlines and password not in cmdlines, cmdlines
            unauthenticated = project.live("exec", "-T", self.store, f"{self.store}-cli", "ping", check=False)
            assert "NOAUTH" in unauthenticated.stdout + unauthenticated.stderr

        # The app connects as its own role: it owns the database (migrations ran as it), and is no superuser.
        query = (
            "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb,"
            " (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()),"
            " (SELECT count(*) FROM django_migrations) FROM pg_roles WHERE rolname = current_user"
        )
        script = (
            "import json; from django.db import connection as c; k = c.cursor();"
            f" k.execute({query!r}); print(json.dumps(k.fetchone()))"
        )
        row = project.run_once("--no-deps", "app", "python", "manage.py", "shell", "-c", script).stdout
        user, superuser, createrole, createdb, owner, migrations = json.loads(row.strip().splitlines()[-1])
        assert (user, superuser, createrole, createdb, owner) == (project.slug, False, False, False, project.slug)
        assert migrations > 0

    def test_8c_nginx_headers_version_and_body_limit(self, project, live, css_path):
        response = live.get(css_path)
        assert response.headers["Server"] == "nginx", "nginx must not announce its version"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert "camera=()" in response.headers["Permissions-Policy"]
        page = live.get("/")
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["Strict-Transport-Security"].startswith("max-age=")
        assert page.headers["X-Content-Type-Options"] == "nosniff", "one nosniff header, not two"
        # HSTS starts low, without includeSubDomains or preload (opt-in); a strict CSP on the pages.
        assert page.headers["Strict-Transport-Security"] == "max-age=3600"
        policy = page.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy and "unsafe" not in policy
        too_big = live.post("/admin/login/", data={"blob": "x" * (21 * 1024 * 1024)})
        assert too_big.status_code == 413

    def test_8c2_uploaded_html_and_svg_cannot_run_as_the_site(self, project, live):
        """Files in the media volume (the admin refuses these extensions; another path might not) are served
        sandboxed, and as downloads unless they are raster images."""
        script = b"<script>document.title = document.cookie</script>"
        attack = {
            "attack.html": b"<html><body>" + script + b"</body></html>",
            "attack.svg": b'<svg xmlns="http://www.w3.org/2000/svg">' + script + b"</svg>",
            "picture.png": b"\x89PNG\r\n\x1a\n",
        }
        writer = "import pathlib, sys; path = pathlib.Path(sys.argv[1]); path.parent.mkdir(exist_ok=True); "
        writer += "path.write_bytes(bytes.fromhex(sys.argv[2]))"
        for name, content in attack.items():
            target = f"/srv/media/attack/{name}"
            project.live("exec", "-T", "app", "python", "-c", writer, target, content.hex())
        for name, content in attack.items():
            response = live.get(f"/media/attack/{name}")
            assert response.status_code == 200 and response.content == content, name
            policy = response.headers["Content-Security-Policy"]
            assert "sandbox" in policy and "default-src 'none'" in policy, f"{name}: {policy}"
            assert response.headers["X-Content-Type-Options"] == "nosniff", name
            assert response.headers["Referrer-Policy"] == "same-origin", f"{name} lost the server's headers"
            if name.endswith(".png"):
                assert "Content-Disposition" not in response.headers, "images display inline"
            else:
                assert response.headers["Content-Disposition"] == "attachment", name

    def test_8d_deploy_checks_pass_in_the_live_image(self, project, live):
        result = project.run_once(
            "--no-deps", "app", "python", "manage.py", "check", "--deploy", "--fail-level", "WARNING"
        )
        assert "System check identified no issues" in result.stdout

    @pytest.mark.parametrize(
        "variable, value, message",
        [
            ("SECRET_KEY", "", "SECRET_KEY is not set, and DEBUG is off"),
            ("ALLOWED_HOSTS", "", "ALLOWED_HOSTS is not set, and DEBUG is off"),
            ("DEBUG", "flase", "DEBUG='flase' is not a boolean"),
        ],
    )
    def test_8e_the_app_refuses_to_start_with_bad_settings(self, project, live, variable, value, message):
        result = project.run_once(
            "--no-deps", "-e", f"{variable}={value}", "app", "gunicorn", "config.wsgi", check=False
        )
        assert result.returncode != 0
        assert message in result.stdout + result.stderr

    def test_8f_debug_left_on_is_announced_loudly(self, project, live):
        # gunicorn with DEBUG=1 runs until stopped: read its output as it comes and stop it at the banner (or
        # after 90 s for gunicorn to load Django and say it, on a machine that may be building images meanwhile).
        name = f"{project.slug}-debug-banner"
        command = project.command(LIVE, "run", "--rm", "--no-deps", "--name", name, "-e", "DEBUG=1", "app")
        output = []
        with subprocess.Popen(
            [*command, "gunicorn", "config.wsgi"],
            cwd=project.path,
            env=project.env(LIVE),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as gunicorn:
            watchdog = threading.Timer(90, run, args=(["docker", "rm", "-f", name],), kwargs={"check": False})
            watchdog.start()
            try:
                for line in gunicorn.stdout:
                    output.append(line)
                    if "DEBUG is on in gunicorn" in line:
                        break
            finally:
                watchdog.cancel()
                run(["docker", "rm", "-f", name], check=False)
        assert any("DEBUG is on in gunicorn" in line for line in output), "".join(output)[-3000:]

    @pytest.mark.parametrize(
        "url, code, message",
        [
            (
                "postgres://u:p@no-such-host.invalid:5432/app",
                1,
                "gave up after 3s waiting for postgres at no-such-host.invalid:5432 (could not translate host name",
            ),
            ("postgres://u:p@db:port/app", 2, "DATABASE_URL is malformed"),
        ],
    )
    def test_8g_wait_entrypoint_explains_a_bad_database_url(self, project, live, url, code, message):
        result = project.run_once(
            "--no-deps", "-e", f"DATABASE_URL={url}", "-e", "WAIT_TIMEOUT=3", "app", "true", check=False
        )
        assert result.returncode == code
        assert message in result.stderr

    def test_8h_database_restart_is_survived_without_manual_steps(self, project, live):
        assert live.get("/").status_code == 200  # the workers hold database connections now
        project.live("stop", "db")
        started = time.monotonic()
        try:
            poll(lambda: live.get("/readyz").status_code == 503, 30, what="/readyz to report the database down")
            assert live.get("/readyz").json()["database"] == "unavailable"
        finally:
            project.live("start", "db")
        poll(lambda: live.get("/readyz").status_code == 200, TIMEOUT, what="/readyz to recover")
        recovered = time.monotonic() - started
        statuses = [live.get("/").status_code for _ in range(30)]
        print(
            f"\n[e2e] {project.slug}: database stopped and started; ready again after {recovered:.1f}s, "
            f"then {statuses.count(200)}/30 home pages 200"
        )
        assert statuses == [200] * 30, f"stale connections served errors after the restart: {statuses}"

    def test_8i_bounded_load_through_nginx_has_no_errors(self, project, live, css_path):
        paths = ["/", css_path]
        results = {"ok": 0, "bad": 0, "dropped": 0}
        latencies, errors = [], []

        def client(worker: int) -> None:
            browser = Browser(project.live_port)
            for index in range(120):
                started = time.monotonic()
                try:
                    status = browser.get(paths[(worker + index) % 2]).status_code
                except requests.RequestException as exc:
                    results["dropped"] += 1
                    errors.append(repr(exc))
                    continue
                latencies.append(time.monotonic() - started)
                results["ok" if 200 <= status < 300 else "bad"] += 1
                if not 200 <= status < 300:
                    errors.append(f"{status} for {paths[(worker + index) % 2]}")

        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(worker,)) for worker in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        elapsed = time.monotonic() - started
        latencies.sort()
        print(
            f"\n[e2e] {project.slug}: load 8 connections x 120 requests: {results['ok']} ok, {results['bad']} "
            f"non-2xx, {results['dropped']} dropped in {elapsed:.1f}s ({results['ok'] / elapsed:.0f} req/s, "
            f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.0f} ms)"
        )
        assert results == {"ok": 960, "bad": 0, "dropped": 0}, errors[:10]

    def test_8j_stop_lets_the_in_flight_request_finish(self, project, live):
        """SIGTERM from `docker compose stop` is a graceful shutdown: gunicorn finishes the request it is
        serving and exits 0. The slow request: /readyz while the database is frozen. With the database's connect
        timeout raised for this test, it waits on the database for as long as it is frozen: the order is
        request sent, SIGTERM handled by gunicorn (its log), the request still waiting, the database thawed, the
        request answered 200."""
        settings = project.path / ".envs/prod.env"
        original = settings.read_text()
        settings.write_text(original + "DATABASE_CONNECT_TIMEOUT=120\n")
        outcome = {}

        def slow_request() -> None:
            try:
                outcome["response"] = live.session.get(live.base + "/readyz", timeout=120)
            except requests.RequestException as exc:
                outcome["error"] = exc

        def sigterm_handled() -> bool:
            return "Handling signal: term" in project.logs("compose.prod.yaml", "app")

        request = threading.Thread(target=slow_request)
        stopping = threading.Thread(target=project.live, args=("stop", "app"))
        try:
            project.up_live()  # the app recreated with the longer connect timeout
            assert not sigterm_handled()
            project.live("pause", "db")
            request.start()
            stopping.start()
            poll(sigterm_handled, 60, 0.5, "gunicorn to handle the SIGTERM that `stop` sent")
            assert request.is_alive(), f"the request ended before gunicorn got SIGTERM: {outcome}"
            assert stopping.is_alive(), "gunicorn exited with a request in flight"
        finally:
            project.live("unpause", "db")
            settings.write_text(original)
        request.join(timeout=90)
        stopping.join(timeout=90)
        assert "error" not in outcome, f"the in-flight request was cut off: {outcome.get('error')}"
        response = outcome["response"]
        assert response.status_code == 200 and response.json()["database"] == "ok", response.text[:300]
        state = project.inspect(project.container("compose.prod.yaml", "app"))["State"]
        assert state["ExitCode"] == 0, f"gunicorn exited {state['ExitCode']}"
        assert "Shutting down: Master" in project.logs("compose.prod.yaml", "app")
        # Docker marks a paused container unhealthy at once and healthy again only at its next check, and
        # `up` refuses to start the app on an unhealthy database: wait for that check first.
        poll(lambda: project.health("compose.prod.yaml", "db") == "healthy", 60, what="the database's next healthcheck")
        project.up_live()  # the app recreated with the product's settings

    def test_7_wait_entrypoint_waits_for_the_database(self, project, live):
        project.live("stop", "db")
        # Never comes back: the entrypoint gives up after its timeout, names what it waited for, exits 1.
        never = project.run_once("--no-deps", "-e", "WAIT_TIMEOUT=5", "app", "true", check=False)
        assert never.returncode == 1, never.stdout + never.stderr
        assert "gave up after 5s waiting for postgres at db:5432" in never.stderr

        # Comes back later: the app, started while the database is down, comes up on its own.
        project.live("stop", "app")
        project.live("up", "-d", "--no-deps", "app")
        poll(
            lambda: "waiting for postgres at db:5432" in project.logs("compose.prod.yaml", "app"),
            60,
            what="the entrypoint to report that it is waiting",
        )
        # Its healthcheck has run, and failed: the app is not reported healthy while it waits.
        app = project.container("compose.prod.yaml", "app")
        poll(
            lambda: any(check["ExitCode"] != 0 for check in project.inspect(app)["State"]["Health"]["Log"]),
            90,
            what="the app's healthcheck to run while the entrypoint waits",
        )
        assert project.health("compose.prod.yaml", "app") != "healthy"
        project.live("start", "db")
        poll(
            lambda: project.health("compose.prod.yaml", "app") == "healthy",
            TIMEOUT,
            what="the app to become healthy after the database started",
        )
        poll(lambda: live.get("/readyz").status_code == 200, 60, what="/readyz to answer 200")

    def test_5_data_survives_down_and_up_and_down_v_removes_it(self, project, live):
        """The database volume is named after the PostgreSQL major and mounted where that major keeps its data:
        /var/lib/postgresql from 18 on (data in 18/docker below it), /var/lib/postgresql/data before."""
        major = self.options["postgres_version"]
        volume = f"{project.slug}-live_postgres{major}_data"
        mounts = project.inspect(project.container("compose.prod.yaml", "db"))["Mounts"]
        (data,) = [mount for mount in mounts if mount["Type"] == "volume"]
        expected = (
            ("/var/lib/postgresql", "/var/lib/postgresql/18/docker")
            if major == "18"
            else ("/var/lib/postgresql/data",) * 2
        )
        assert (data["Name"], data["Destination"]) == (volume, expected[0])
        version = project.live("exec", "-T", "db", "cat", f"{expected[1]}/PG_VERSION").stdout.strip()
        assert version == major, f"{expected[1]} holds a PostgreSQL {version!r} cluster"
        project.live("down", "--timeout", "5")
        assert volume in run(["docker", "volume", "ls", "-q"]).stdout
        project.up_live()
        assert "E2E upload" in live.get("/").text, "the uploaded document should survive down + up"
        project.live("down", "-v", "--timeout", "5")
        assert volume not in run(["docker", "volume", "ls", "-q"]).stdout


class TestStackOnTheDefaults(StackChecks):
    """The default answers' versions: Python 3.14, PostgreSQL 18 (its new data layout), Valkey and Celery (with
    beat); and error reports to Sentry, which are off by default."""

    options = {
        "project_name": "E2E Full",
        "python_version": "3.14",
        "django_version": "5.2",
        "postgres_version": "18",
        "key_value_store": "valkey",
        "use_celery": "y",
        "use_sentry": "y",
    }

    def relaunch(self, project) -> None:
        """The live stack as the deploy steps leave it (test_5 ends with `down -v`)."""
        project.run_once("app", "python", "manage.py", "migrate", "--noinput")
        project.up_live()

    def test_9a_beat_runs_the_periodic_task_on_schedule_and_its_health_tells_a_hung_beat(self, project, live):
        """One beat, locked down like the worker; with CLEAR_SESSIONS_SCHEDULE short, it has the worker delete
        expired sessions again and again; its healthcheck fails while it hangs and recovers when it resumes."""
        self.relaunch(project)
        assert project.health("compose.prod.yaml", "beat") == "healthy"
        beat = project.container("compose.prod.yaml", "beat")
        status = project.live("exec", "-T", "beat", "cat", "/proc/1/status").stdout
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        assert int(fields["CapEff"], 16) == 0 and fields["NoNewPrivs"].strip() == "1"
        assert fields["Uid"].split()[0] != "0", "beat runs as root"
        write = project.live("exec", "-T", "beat", "touch", "/probe", check=False)
        assert write.returncode != 0 and "Read-only file system" in write.stderr
        # Never two: scaling it is refused, and the one beat stays alone.
        scaled = project.live("up", "-d", "--scale", "beat=2", check=False)
        assert scaled.returncode != 0 and "custom container name" in scaled.stdout + scaled.stderr
        assert project.compose("compose.prod.yaml", "ps", "-a", "-q", "beat").stdout.split() == [beat]

        expired = (
            "from datetime import timedelta; from django.contrib.sessions.backends.db import SessionStore; "
            "from django.contrib.sessions.models import Session; from django.utils import timezone\n"
            "for _ in range({count}):\n"
            "    s = SessionStore(); s['e2e'] = 1; s.create()\n"
            "    Session.objects.filter(pk=s.session_key).update(expire_date=timezone.now() - timedelta(days=1))\n"
            "print('EXPIRED', Session.objects.filter(expire_date__lt=timezone.now()).count())"
        )

        def expired_sessions(count: int = 0) -> int:
            out = project.live("exec", "-T", "app", "python", "manage.py", "shell", "-c", expired.format(count=count))
            return int(re.search(r"^EXPIRED (\d+)$", out.stdout, re.M).group(1))

        env_file = project.path / ".envs/prod.env"
        original = env_file.read_text()
        try:
            env_file.write_text(original + "CLEAR_SESSIONS_SCHEDULE=5\n")
            project.up_live()  # app, worker and beat are recreated with the short schedule
            started = time.monotonic()
            for count in (3, 2):  # two rounds: each one deleted by a later run of the task
                expired_sessions(count)
                poll(lambda: expired_sessions() == 0, 90, interval=2, what="the periodic task to delete them")
            print(
                f"\n[e2e] {project.slug}: two rounds of expired sessions deleted in {time.monotonic() - started:.0f}s"
            )

            def logged_twice():
                sent = project.logs("compose.prod.yaml", "beat").count("Sending due task clear-expired-sessions")
                worker = project.logs("compose.prod.yaml", "worker")
                deleting = re.findall(r"clear_expired_sessions: deleted [1-9]\d* expired sessions", worker)
                return sent >= 2 and len(deleting) >= 2

            # The task logs once its delete has committed: the second line may follow the empty table by a moment.
            poll(logged_twice, 60, what="beat to log two sends and the worker two deletions")

            # A hung beat (stopped, not exited: Docker still sees it running) fails its healthcheck once its
            # heartbeat is 90 s old, and passes again when it resumes. Rather than wait 90 s, the heartbeat of the
            # hung beat is aged: 80 s old it still passes (nothing touches it while beat hangs), 100 s it fails.
            beat = project.container("compose.prod.yaml", "beat")
            command = project.inspect(beat)["Config"]["Healthcheck"]["Test"][1:]  # what Docker runs (CMD form)

            def healthcheck_passes() -> bool:
                return run(["docker", "exec", beat, *command], check=False).returncode == 0

            def heartbeat_aged(seconds: int) -> None:
                then = f"@{int(time.time()) - seconds}"
                run(["docker", "exec", beat, "touch", "-d", then, "/tmp/celerybeat-heartbeat"])

            assert healthcheck_passes()
            run(["docker", "kill", "--signal", "STOP", beat])
            try:
                heartbeat_aged(80)
                assert healthcheck_passes(), "80 s is within the healthcheck's 90 s"
                heartbeat_aged(100)
                assert not healthcheck_passes(), "the hung beat's heartbeat is 100 s old: its healthcheck must fail"
                hung = 100
                assert project.inspect(beat)["State"]["Running"], "beat should hang, not exit"
            finally:
                run(["docker", "kill", "--signal", "CONT", beat])
            poll(healthcheck_passes, 60, interval=2, what="beat's healthcheck to pass after it resumed")
            poll(
                lambda: project.health("compose.prod.yaml", "beat") == "healthy",
                90,
                interval=3,
                what="beat to be healthy again",
            )
            print(
                f"\n[e2e] {project.slug}: beat's healthcheck failed with a {hung}s old heartbeat, passed once resumed"
            )
        finally:
            env_file.write_text(original)
            project.up_live()

    def test_9b_an_error_in_a_view_reaches_sentry_without_personal_data_only_with_a_dsn(self, project, live, tmp_path):
        """A Sentry stand-in on the stack's network; the app image plus a failing view (test settings only), run
        at its own tag. Without SENTRY_DSN nothing reaches it; with it, the error does, tagged with the image's
        tag as the release, and without the user's email address or cookies."""
        self.relaunch(project)
        receiver = f"{project.slug}-sentry"
        tag = "e2e-sentry"
        for name, text in SENTRY_RECEIVER.items():
            (tmp_path / "receiver" / name).parent.mkdir(exist_ok=True)
            (tmp_path / "receiver" / name).write_text(text)
        run(["docker", "build", "-t", f"{receiver}:e2e", str(tmp_path / "receiver")], timeout=600)
        (tmp_path / "app").mkdir()
        for name, text in FAILING_VIEW.items():
            (tmp_path / "app" / name).write_text(text)
        app_image, static_image = project.images["applayer"], project.images["staticlayer"]
        (tmp_path / "app" / "Dockerfile").write_text(
            f"FROM {app_image}\nCOPY e2e_settings.py e2e_urls.py /app/\nENV DJANGO_SETTINGS_MODULE=e2e_settings\n"
        )
        offsite_image = project.images["offsite"]  # the live stack's third image, unchanged
        tagged = [image.replace(":e2e", f":{tag}") for image in (app_image, static_image, offsite_image)]
        run(["docker", "build", "-t", tagged[0], str(tmp_path / "app")], timeout=600)
        run(["docker", "tag", static_image, tagged[1]])
        run(["docker", "tag", offsite_image, tagged[2]])
        network = next(
            iter(project.inspect(project.container("compose.prod.yaml", "app"))["NetworkSettings"]["Networks"])
        )
        run(["docker", "rm", "-f", receiver], check=False)
        run(
            ["docker", "run", "-d", "--name", receiver, "--network", network, "--network-alias", "sentry"]
            + [f"{receiver}:e2e"]
        )

        def up_at_tag() -> None:
            # The live stack as the other tests run it (LIVE: behind-proxy, nginx on LIVE_PORT), at the test's tag.
            command = project.command(LIVE, "up", "-d", "--wait", "--wait-timeout", str(TIMEOUT))
            run(command, cwd=project.path, env={**project.env(LIVE), "TAG": tag}, timeout=TIMEOUT + 60)

        def envelopes() -> list[dict]:
            lines = run(["docker", "logs", receiver]).stdout.splitlines()
            return [json.loads(line) for line in lines if line.startswith("{")]

        email, password = "sentry-e2e@example.com", "e2e-Sentry-Password-3"
        create = (
            "from django.contrib.auth import get_user_model; User = get_user_model()\n"
            f"User.objects.filter(email={email!r}).exists() or User.objects.create_superuser("
            f"**{{'email': {email!r}, User.USERNAME_FIELD: {email!r}, 'password': {password!r}}})"
        )
        env_file = project.path / ".envs/prod.env"
        original = env_file.read_text()
        try:
            up_at_tag()  # the failing view, no DSN
            project.live("exec", "-T", "app", "python", "manage.py", "shell", "-c", create)
            visitor = Browser(project.live_port)
            login = visitor.post_form("/admin/login/", {"username": email, "password": password, "next": "/"})
            assert login.status_code == 302, login.text[:500]
            assert visitor.get("/e2e/error/").status_code == 500
            poll(
                lambda: "e2e: an error raised in a view" in project.logs("compose.prod.yaml", "app"),
                30,
                what="the app to log the view's error",
            )
            # No DSN, no client: the SDK in the app's settings is inactive, so nothing can be on its way.
            active = "import django; django.setup(); import sentry_sdk; print(sentry_sdk.get_client().is_active())"
            assert project.live("exec", "-T", "app", "python", "-c", active).stdout.strip() == "False"
            assert envelopes() == [], "a report was sent without SENTRY_DSN"

            env_file.write_text(original + "SENTRY_DSN=http://e2e-public-key@sentry:8000/1\n")
            up_at_tag()  # recreated with the DSN
            assert project.live("exec", "-T", "app", "python", "-c", active).stdout.strip() == "True"
            assert visitor.get("/e2e/error/").status_code == 500
            reports = poll(
                lambda: [e for e in envelopes() if "e2e: an error raised in a view" in e["body"]],
                60,
                what="the error report to reach the Sentry stand-in",
            )
            report = reports[0]
            assert report["path"] == "/api/1/envelope/"
            events = [json.loads(line) for line in report["body"].splitlines() if line.startswith("{")]
            (event,) = [item for item in events if "exception" in item]
            assert event["release"] == tag and event["environment"] == "production"
            assert event["exception"]["values"][-1]["type"] == "RuntimeError"
            assert event["request"]["url"].endswith("/e2e/error/")
            # No personal data: not the user, their address, their cookies (session, CSRF) or their IP.
            everything = json.dumps(envelopes())
            cookies = [cookie.value for cookie in visitor.session.cookies]
            assert cookies and not [value for value in cookies if value in everything]
            assert email not in everything and "user" not in event and "cookies" not in event["request"]
            assert "REMOTE_ADDR" not in everything
            print(f"\n[e2e] {project.slug}: the view's error reached Sentry as release {event['release']}, no PII")
        finally:
            env_file.write_text(original)
            project.up_live()  # back to the product's image at its tag
            run(["docker", "rm", "-f", receiver], check=False)
            run(["docker", "rmi", "-f", f"{receiver}:e2e", *tagged], check=False)


class TestStackOnTheOldestVersions(StackChecks):
    """The oldest supported pair, Python 3.12 and PostgreSQL 15, on the newest Django, with no store; users
    sign in with a username (the defaults: by email)."""

    options = {
        "project_name": "E2E Lean",
        "python_version": "3.12",
        "django_version": "6.1",
        "postgres_version": "15",
        "key_value_store": "none",
        "use_celery": "n",
        "username_type": "username",
    }


class TestStackWithRedis(Stack):
    """Redis 8 as the store and broker, on PostgreSQL 17 (the old data layout): the checks that the store and
    the database version change, not the whole list again."""

    options = {
        "project_name": "E2E Redis",
        "python_version": "3.13",
        "django_version": "6.1",
        "postgres_version": "17",
        "key_value_store": "redis",
        "use_celery": "y",
    }
    test_1_every_dockerfile_target_builds = StackChecks.test_1_every_dockerfile_target_builds
    test_3a_live_pages_and_readiness_through_nginx = StackChecks.test_3a_live_pages_and_readiness_through_nginx
    test_3c_admin_login_with_csrf_and_media_upload_served_by_nginx = (
        StackChecks.test_3c_admin_login_with_csrf_and_media_upload_served_by_nginx
    )
    test_4_celery_task_runs_in_the_worker = StackChecks.test_4_celery_task_runs_in_the_worker
    test_8b_live_containers_are_locked_down = StackChecks.test_8b_live_containers_are_locked_down
    test_5_data_survives_down_and_up_and_down_v_removes_it = (
        StackChecks.test_5_data_survives_down_and_up_and_down_v_removes_it
    )
