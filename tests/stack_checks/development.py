"""The development stack: `make up` (bind mount, runserver reloading) and `make watch` (sync and rebuild)."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import requests

import pythons
from stack_checks.stack import Stack
from support import (
    TIMEOUT,
    WATCH,
    chromium,
    clean_env,
    poll,
    run,
)


class DevelopmentChecks(Stack):
    """Checks for a test class that sets `options` (tests/test_e2e.py); they run first, before the live stack starts."""

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
            # Development tools: the debug toolbar, for this machine's browser, whose requests reach runserver through
            # the published port, from the Docker network's gateway. A real browser opens it: its script ran, under
            # the site's Content-Security-Policy (no inline script), with no violation. A request from another
            # container (nginx's) gets none.
            assert 'id="djDebug"' in home.text, home.text[-2000:]
            assert 'id="djDebug"' not in behind_nginx.text
            with chromium() as page:
                page.goto(base + "/")
                # Hidden in the HTML, shown by the toolbar's script.
                page.wait_for_selector("#djDebugToolbar", state="visible", timeout=30_000)
                # A panel's content comes from the toolbar's own URLs (/__debug__/): the page's queries.
                page.locator("#djDebugPanelList a.SQLPanel").click()
                page.wait_for_selector("#SQLPanel", state="visible", timeout=30_000)
                page.locator("#SQLPanel .djdt-scroll").get_by_text("SELECT").first.wait_for(state="attached")
                assert page.csp_violations == [], page.csp_violations
            # `make test`: the project's own suite in the development image, which has the dev tools. Its exit
            # code, and the summary line (tests ran, none failed). Also on a checkout where the live stack ran:
            # its backups folder is root's alone (the backup service writes it), and nothing in it is a test: a
            # failing one planted there is not collected.
            planted = project.path / "backups"
            planted.mkdir(mode=0o700, exist_ok=True)
            failing = "def test_planted():\n    assert False, 'collected from backups/'\n"
            (planted / "test_planted.py").write_text(failing)
            tests = run(["make", "test"], cwd=project.path, env=project.env(compose), timeout=900, check=False)
            summary = r"^=+ \d+ passed(, \d+ (skipped|warnings?|deselected))* in [\d.]+s"  # no failed, no errors
            assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr
            assert re.search(summary, tests.stdout, re.M), tests.stdout[-3000:] + tests.stderr
            (planted / "test_planted.py").unlink()  # the live stack's backups folder holds backups only

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
