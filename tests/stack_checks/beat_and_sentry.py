"""Celery beat on schedule (and its health when it hangs), and error reports to Sentry only with a DSN: the
checks for the default answers, which have Celery and Sentry."""

from __future__ import annotations

import json
import re
import time

from stack_checks.faults import FaultChecks
from support import LIVE, TIMEOUT, poll, run, sign_in

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


class BeatAndSentryChecks(FaultChecks):
    """Checks for a test class that sets `options` with Celery and Sentry; they run after FaultChecks', whose last
    check empties the stack: each starts it again."""

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
        fields = project.process_status(LIVE, "beat")
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
            visitor = sign_in(project.live_port, email, password, "/")
            assert visitor, "the superuser's login was refused"
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
