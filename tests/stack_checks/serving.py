"""The live stack serving visitors through nginx: pages, static and media files, the admin, mail, Celery, and the
locks on every container."""

from __future__ import annotations

import json
import re
import threading
import time

import requests

from stack_checks.images import ImageChecks
from support import (
    ADMIN_PASSWORD,
    DOMAIN,
    LIVE,
    SMTP_CATCHER,
    Browser,
    env_file,
    poll,
    run,
    sign_in,
    upload,
)


class ServingChecks(ImageChecks):
    """Checks for a test class that sets `options` (tests/test_e2e.py); they run after ImageChecks'."""

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
        # The admin's password-reset page: the one admin page a visitor sees (its login is the site's, allauth's).
        login = live.get("/admin/password-reset/")
        assert login.status_code == 200
        css = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login.text)
        assert css, "the admin should link its CSS by a hashed name"
        response = live.get(css.group(1), headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200
        assert response.headers["Content-Encoding"] == "gzip"
        assert "max-age=31536000" in response.headers["Cache-Control"]
        assert "body" in response.text
        # Pages are not compressed: they carry the CSRF token next to text a visitor chooses (BREACH).
        page = live.get("/accounts/login/", headers={"Accept-Encoding": "gzip"})
        assert page.status_code == 200 and "Content-Encoding" not in page.headers
        # Served from the nginx image: the app never saw the request.
        assert css.group(1) not in project.logs("compose.prod.yaml", "app")

    def test_3c_admin_login_with_csrf_and_media_upload_served_by_nginx(self, project, live, admin):
        # Its own browser (`live` stays an anonymous visitor's), through allauth's login and, for staff on the live
        # site, a second factor (support.sign_in sets one up).
        browser = sign_in(project.live_port, admin, ADMIN_PASSWORD)
        assert browser, f"login failed: {project.logs('compose.prod.yaml', 'app')}"
        assert "Site administration" in browser.get("/admin/").text

        content = b"uploaded through the admin, served by nginx\n"
        path = upload(project, browser, "e2e-upload.txt", content)
        media = live.get(path)  # served to anyone
        assert media.status_code == 200 and media.content == content
        assert path not in project.logs("compose.prod.yaml", "app")

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

    def test_4_celery_task_runs_in_the_worker(self, project, live, admin, media_path):
        services = project.live("config", "--services").stdout.split()
        if not self.with_celery:
            # Pruned, also in the running stack: no worker, no broker.
            assert "worker" not in services and "tasks" not in live.get("/").text
            return
        assert {"worker", self.store} <= set(services)
        # A visitor who is not staff cannot queue a task: sent to the login.
        visitor = Browser(project.live_port)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', visitor.get("/accounts/login/").text).group(1)
        refused = visitor.post("/tasks/", {"csrfmiddlewaretoken": token}, referer="/")
        assert refused.status_code == 302 and refused.headers["Location"].startswith("/admin/login/")
        # Staff (the admin fixture's) can: the home page's form posts to /tasks/.
        staff = sign_in(project.live_port, admin, ADMIN_PASSWORD, "/")
        assert staff, "the admin's login was refused"
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

    def test_4b_a_forgotten_password_is_reset_through_a_mailed_link(self, project, live, tmp_path):
        """The live site mails the reset link through EMAIL_URL's SMTP server (one this test runs on the stack's
        network); the link, opened through nginx, sets a new password, and the staff member signs in with it (a
        member of its own: the shared admin keeps its password)."""
        email = "forgetful@example.com"
        create = (
            "from django.contrib.auth import get_user_model; User = get_user_model()\n"
            f"User.objects.filter(email={email!r}).exists() or User.objects.create_superuser("
            f"**{{'email': {email!r}, User.USERNAME_FIELD: {email!r}, 'password': 'e2e-Forgotten-Password-4'}})"
        )
        project.live("exec", "-T", "app", "python", "manage.py", "shell", "-c", create)
        catcher = f"{project.slug}-smtp"
        # Without EMAIL_URL the reset fails loudly, naming the variable, and nothing pretends to be sent.
        failed = live.post_form("/admin/password-reset/", {"email": email})
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
            sent = live.post_form("/admin/password-reset/", {"email": email})
            assert sent.status_code == 302, project.logs("compose.prod.yaml", "app")
            assert sent.headers["Location"] == "/accounts/password-reset/sent/"
            mail = poll(
                lambda: "/accounts/reset/" in (logs := run(["docker", "logs", catcher]).stdout) and logs,
                60,
                what="the reset mail to reach the SMTP server",
            )
            assert f"To: {email}" in mail
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
            assert sign_in(project.live_port, email, new), "the new password should sign in"
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

    def test_8b_live_containers_are_locked_down(self, project, live):
        hardened = ["app", "nginx"] + (["worker"] if self.with_celery else [])
        for service in hardened:
            fields = project.process_status(LIVE, service)
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
            fields = project.process_status(LIVE, service)
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
