"""Faults the live stack survives: a database restart, a graceful stop with a request in flight, an app started
before its database, and data kept across `down` (removed by `down -v`, the last check: it empties the stack)."""

from __future__ import annotations

import threading
import time

import requests

from stack_checks.serving import ServingChecks
from support import (
    TIMEOUT,
    poll,
    run,
)


class FaultChecks(ServingChecks):
    """Checks for a test class that sets `options` (tests/test_e2e.py); they run after ServingChecks'."""

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

        def waiting_on_the_database() -> bool:
            """The app holds a connection to PostgreSQL's port (5432: 1538 in /proc/net/tcp), established: the
            request is inside gunicorn, waiting for the frozen database to answer. (Just recreated, the app held
            none before: its healthcheck does not touch the database.)"""
            tables = project.live("exec", "-T", "app", "sh", "-c", "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null")
            rows = [line.split() for line in tables.stdout.splitlines()]
            return any(len(row) > 3 and row[2].endswith(":1538") and row[3] == "01" for row in rows)

        request = threading.Thread(target=slow_request)
        stopping = threading.Thread(target=project.live, args=("stop", "app"))
        try:
            project.up_live()  # the app recreated with the longer connect timeout
            assert not sigterm_handled()
            project.live("pause", "db")
            assert not waiting_on_the_database()
            request.start()
            poll(waiting_on_the_database, 60, 0.5, "the request to reach gunicorn and wait on the database")
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

    def test_5_data_survives_down_and_up_and_down_v_removes_it(self, project, live, media_path):
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
        # The document uploaded before: its row (the home page lists it) and its file (nginx serves it).
        assert media_path in live.get("/").text, "the uploaded document should survive down + up"
        assert live.get(media_path).status_code == 200, "the uploaded file should survive down + up"
        project.live("down", "-v", "--timeout", "5")
        assert volume not in run(["docker", "volume", "ls", "-q"]).stdout
