"""Issue 12, releases without downtime: `make release TAG=...` and `make rollback` (./live) on the live stack,
under a bounded load on loopback. The project bakes the defaults (Celery and Valkey: the worker is rolled too);
its images are built twice, as v1 and as v2 (a page text differs), and once more as a v3 that never becomes
healthy. Its own project names ("E2E Release ..."). Needs a Docker engine (skipped without one, except under CI).

The load goes through the HTTPS edge, whose certificate pebble issues (tests/compose.pebble.yaml, as in
tests/test_edge.py), trusting only pebble's root: nginx publishes no port there, so it is rolled like the app.
test_5 runs behind-proxy (compose.behind-proxy.yaml: nginx publishes LIVE_PORT itself), the load straight on
nginx, and measures what the in-place replacement of nginx costs."""

from __future__ import annotations

import collections
import re
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from support import (
    DOMAIN,
    TIMEOUT,
    Project,
    bake,
    clean_env,
    free_port,
    pebble_issuing_root,
    poll,
    require_engine,
    run,
    stack_name,
    write_pebble_api_root,
)

pytestmark = pytest.mark.e2e
COMPOSE_FILE = "compose.prod.yaml:compose.pebble.yaml"
BEHIND_PROXY = "compose.prod.yaml:compose.behind-proxy.yaml"
# The requests of test_5 arrive at nginx from Docker's gateway: a private address nginx must believe.
TRUSTED_PROXIES = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"
# v4 to v6 are v1 with one flaw each (test_3b to test_3d).
TAGS = ("v1", "v2", "v3", "v4", "v5", "v6")
# v2 differs from v1 in a page's text (and in its tag, which APP_VERSION reports).
V1_TEXT, V2_TEXT = "It works: Django is serving this page", "Version two: Django is serving this page"


@dataclass
class Sample:
    started: float
    seconds: float
    path: str
    status: int | None  # None: no response (the error says why)
    version: str | None = None
    text: str = ""
    error: str = ""

    @property
    def failed(self) -> bool:
        return self.status is None or not 200 <= self.status < 300


@dataclass
class Load:
    """`threads` loops of GETs, each over `paths` in turn, from start to stop: every answer is kept. A base URL,
    headers and a TLS verify setting, so the same load runs through nginx or through an HTTPS edge."""

    base: str
    paths: list[str]
    headers: dict[str, str] = field(default_factory=dict)
    verify: bool | ssl.SSLContext = True
    sni: str | None = None  # the TLS server name, when the base URL names an address
    threads: int = 6
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self):
        self.stopping = threading.Event()
        self.workers = [threading.Thread(target=self.loop, daemon=True) for _ in range(self.threads)]

    def loop(self) -> None:
        extensions = {"sni_hostname": self.sni} if self.sni else {}
        session = httpx.Client(headers=self.headers, verify=self.verify, timeout=30)
        while not self.stopping.is_set():
            for path in self.paths:
                started = time.monotonic()
                try:
                    answer = session.get(self.base + path, extensions=extensions)
                    sample = Sample(started, time.monotonic() - started, path, answer.status_code)
                    sample.version = answer.headers.get("X-App-Version")
                    sample.text = answer.text if path == "/" else ""
                except httpx.HTTPError as exc:
                    sample = Sample(started, time.monotonic() - started, path, None, error=repr(exc)[:300])
                self.samples.append(sample)

    def __enter__(self) -> Load:
        for worker in self.workers:
            worker.start()
        return self

    def answered_since(self, moment: float) -> bool:
        """Every thread has been answered on every path, in requests sent after `moment`."""
        return len([s for s in list(self.samples) if s.started > moment]) >= self.threads * len(self.paths)

    def __exit__(self, *exc) -> None:
        # The answers after the command returned: a full round of requests sent after it, then stop.
        returned = time.monotonic()
        poll(lambda: self.answered_since(returned), 60, 0.1, "the load's answers after the command returned")
        self.stopping.set()
        for worker in self.workers:
            worker.join(60)

    def failures(self) -> list[Sample]:
        return [sample for sample in self.samples if sample.failed]

    def summary(self) -> str:
        seconds = sorted(sample.seconds for sample in self.samples)
        counts = collections.Counter((s.path, s.status, s.version) for s in self.samples)
        p99 = seconds[int(len(seconds) * 0.99)] if seconds else 0
        return f"{len(self.samples)} requests, p99 {p99:.2f}s, max {seconds[-1] if seconds else 0:.2f}s: {dict(counts)}"


class ReleaseProject(Project):
    """The baked project with its edge and pebble, and its make targets run as a user types them."""

    compose_file = COMPOSE_FILE
    overrides: dict[str, str] = {}  # a test's own settings, e.g. a short RELEASE_TIMEOUT

    def env(self, file):
        ports = {"HTTP_PORT": self.http_port, "HTTPS_PORT": self.https_port, "PEBBLE_PORT": self.pebble_port}
        return clean_env(
            **{name: str(port) for name, port in ports.items()},
            LIVE_PORT=str(self.live_port),
            EDGE_DOMAIN=DOMAIN,
            TRUSTED_PROXIES=TRUSTED_PROXIES,
            COMPOSE_FILE=self.compose_file,
            LIVE_FILES=self.compose_file,  # the files for ./live (its override of BEHIND_PROXY)
            **{"RELEASE_TIMEOUT": str(TIMEOUT), **self.overrides},  # a crashing tag is caught long before this
        )

    def command(self, file, *args: str) -> list[str]:
        return ["docker", "compose", *args]  # COMPOSE_FILE names the files

    def running(self, service: str) -> list[str]:
        """The images of the service's running containers."""
        ids = self.live("ps", "-q", service).stdout.split()
        return [self.inspect(i)["Config"]["Image"] for i in ids]

    def addresses(self) -> set[str]:
        """What Docker's DNS answers nginx for the app's name."""
        nginx = self.live("ps", "-q", "nginx", check=False).stdout.split()
        if not nginx:
            return set()
        answer = run(["docker", "exec", nginx[0], "getent", "ahostsv4", "app"], check=False).stdout
        return {line.split()[0] for line in answer.splitlines() if line.strip()}

    def tags(self) -> list[str]:
        return [f"{self.slug}-{kind}:{tag}" for kind in ("app", "static", "offsite") for tag in TAGS]

    def remove(self) -> None:
        # With the edge's files: behind-proxy (test_5) gives the edge a profile, and down -v would keep its volumes
        # (an old certificate, from another run's pebble, that the next run's edge would serve).
        self.compose_file = COMPOSE_FILE
        # Every profile: make restore and make backups run the offsite service (its profile off), which makes its
        # network, and a plain down would leave it.
        self.live("--profile", "*", "down", "-v", "--remove-orphans", "--timeout", "5", check=False)
        run(["docker", "rmi", "-f", *self.tags(), self.images["backup"]], check=False)


@pytest.fixture(scope="module")
def released(cookies_session):
    """The default project, its images built as v1, v2 and a broken v3, and v1 released on an empty host."""
    require_engine()
    project = ReleaseProject(bake(cookies_session, project_name=stack_name("E2E Release"), domain_name=DOMAIN))
    shutil.copy(Path(__file__).parent / "compose.pebble.yaml", project.path)
    write_pebble_api_root(project.path)
    project.live_port, project.http_port, project.https_port, project.pebble_port = (free_port() for _ in range(4))
    project.remove()
    try:
        project.make("build-live", "TAG=v1", timeout=1800)
        home = project.path / project.slug / "templates" / project.slug / "home.html"
        home.write_text(home.read_text().replace(V1_TEXT, V2_TEXT))
        project.make("build-live", "TAG=v2", timeout=1800)
        # v3: v1 with a setting gunicorn refuses, so its app crashes at start (its migrations run fine).
        broken = f"FROM {project.slug}-app:v1\nENV GUNICORN_TIMEOUT=not-a-number\n"
        built = subprocess.run(
            ["docker", "build", "-t", f"{project.slug}-app:v3", "-"], input=broken, capture_output=True, text=True
        )
        assert built.returncode == 0, built.stderr[-3000:]
        for kind in ("static", "offsite"):
            run(["docker", "tag", f"{project.slug}-{kind}:v1", f"{project.slug}-{kind}:v3"])
        first = project.make("release", "TAG=v1", timeout=TIMEOUT + 300)
        assert "all traffic on v1" in first.output or "v1 released" in first.output, first.output[-3000:]
        project.trust = pebble_issuing_root(project.path, project.pebble_port)
        yield project
    finally:
        print(project.logs("", "app", "nginx", "edge")[-6000:])
        project.remove()


def load(project: ReleaseProject) -> Load:
    """Six threads on a page and on the page's stylesheet (a static file of both versions): through the HTTPS
    edge (its loopback port, the domain as the TLS server name, pebble's root alone trusted), or, behind-proxy,
    on nginx's LIVE_PORT (as a TLS proxy in front of it would: the public host, and HTTPS)."""
    if project.compose_file == COMPOSE_FILE:
        base, headers, verify, sni = f"https://127.0.0.1:{project.https_port}", {"Host": DOMAIN}, project.trust, DOMAIN
    else:
        base, headers, verify, sni = (
            f"http://127.0.0.1:{project.live_port}",
            {"Host": DOMAIN, "X-Forwarded-Proto": "https"},
            True,
            None,
        )
    extensions = {"sni_hostname": sni} if sni else {}

    def home():
        try:
            with httpx.Client(headers=headers, verify=verify, timeout=30) as client:
                page = client.get(base + "/", extensions=extensions)
        except httpx.HTTPError:  # the edge still waits for its certificate
            return None
        return page if page.status_code == 200 else None

    page = poll(home, 180, 2, "the home page")
    stylesheet = re.search(r'href="(/static/[^"]+\.css)"', page.text).group(1)
    return Load(base, ["/", stylesheet], headers=headers, verify=verify, sni=sni)


def release_under_load(project: ReleaseProject, *make_args: str, check: bool = True, meanwhile=None):
    """make with these arguments while the load runs: (the load, the result, when the command returned,
    when it printed its lines). `meanwhile(lines)` is called about twice a second while make runs."""
    with load(project) as traffic:
        poll(lambda: traffic.answered_since(0), 60, 0.1, "the load's first answers")  # served before the command
        started = time.monotonic()
        process = subprocess.Popen(
            ["make", *make_args],
            cwd=project.path,
            env=project.env(""),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines, addresses = [], set()
        # Docker's DNS during the release, sampled from nginx's side; the output with its times.
        reader = threading.Thread(target=lambda: lines.extend((time.monotonic(), x) for x in process.stdout))
        reader.start()
        while process.poll() is None:
            addresses |= {frozenset(project.addresses())}
            if meanwhile:
                meanwhile([line for _, line in list(lines)])
            time.sleep(0.5)
        reader.join()
        returned = time.monotonic()
    output = "".join(line for _, line in lines)
    if check:
        assert process.returncode == 0, output[-4000:]
    print(f"\n[release] make {' '.join(make_args)}: {returned - started:.1f}s; {traffic.summary()}")
    print(f"[release] DNS answers for app seen from nginx: {sorted(sorted(a) for a in addresses)}")
    for at, line in lines:
        if line.startswith("release:"):
            print(f"[release] {at - started:5.1f}s {line.rstrip()}")
    return traffic, process.returncode, output, started, returned, lines, addresses


def derive(project: ReleaseProject, tag: str, dockerfile: str, **files: str) -> None:
    """The app image `tag`: v1's with DOCKERFILE's lines (FILES in its build context); static and offsite are
    v1's, tagged `tag`."""
    with tempfile.TemporaryDirectory() as context:
        for name, text in {"Dockerfile": f"FROM {project.slug}-app:v1\n{dockerfile}", **files}.items():
            (Path(context) / name).write_text(text)
        built = run(["docker", "build", "-q", "-t", f"{project.slug}-app:{tag}", context], check=False)
        assert built.returncode == 0, built.stderr[-3000:]
    for kind in ("static", "offsite"):
        run(["docker", "tag", f"{project.slug}-{kind}:v1", f"{project.slug}-{kind}:{tag}"])


def served_version(project: ReleaseProject) -> tuple[str | None, str]:
    """X-App-Version and the page of one request for / through the stack (the edge, or nginx behind-proxy)."""
    traffic = load(project)
    with httpx.Client(headers=traffic.headers, verify=traffic.verify, timeout=30) as client:
        extensions = {"sni_hostname": traffic.sni} if traffic.sni else {}
        page = client.get(traffic.base + "/", extensions=extensions)
    assert page.status_code == 200, page.text[:500]
    return page.headers.get("X-App-Version"), page.text


# v4's migration: it raises, as a migration with a bug does.
FAILING_MIGRATION = """from django.db import migrations


def fail(apps, schema_editor):
    raise RuntimeError("E2E: this migration fails on purpose")


class Migration(migrations.Migration):
    dependencies = [("users", "0003_email_addresses")]
    operations = [migrations.RunPython(fail)]
"""
# An ASGI server's request for / (argv[1]: the host), made to config.asgi's application: the status, the
# X-App-Version header and the body, one per line.
ASGI_REQUEST = """
import asyncio, sys
from config.asgi import application
host = sys.argv[1].encode()
scope = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "https",
    "path": "/", "raw_path": b"/", "query_string": b"", "root_path": "", "client": ("127.0.0.1", 40000),
    "server": ("127.0.0.1", 8000), "headers": [(b"host", host), (b"x-forwarded-proto", b"https")],
}
sent, requested = [], []
async def receive():
    if not requested:  # the request, then nothing: the client stays connected
        requested.append(1)
        return {"type": "http.request", "body": b"", "more_body": False}
    await asyncio.Event().wait()
async def send(message):
    sent.append(message)
asyncio.run(application(scope, receive, send))
headers = {name.lower(): value for name, value in sent[0]["headers"]}
print(sent[0]["status"]); print(headers.get(b"x-app-version", b"").decode())
print(b"".join(m.get("body", b"") for m in sent[1:]).decode())
"""
# v6's celery: beat exits at once (a broken schedule, say), the worker and its health check work.
BEAT_FAILS = """#!/bin/sh
case " $* " in *" beat "*) echo "E2E: this tag's beat does not start" >&2; exit 1 ;; esac
exec python -m celery "$@"
"""


def serving(project: ReleaseProject, tag: str, previous: str) -> None:
    """The stack at `tag` with `previous` recorded as the one before it (.release), reached with make as a user
    would: nothing to do when the test before left it so, two releases when the test runs alone (-k)."""
    if (project.path / ".release").read_text() == f"TAG={tag}\nPREVIOUS_TAG={previous}\n":
        return
    project.make("release", f"TAG={previous}", timeout=TIMEOUT + 300)  # "already running" keeps the record
    project.make("release", f"TAG={tag}", timeout=TIMEOUT + 300)


class TestRelease:
    def test_1_release_moves_every_request_to_v2_without_a_failure(self, released):
        project = released
        assert project.running("app") == [f"{project.slug}-app:v1"]
        traffic, _, output, started, returned, lines, addresses = release_under_load(project, "release", "TAG=v2")
        assert traffic.failures() == [], traffic.failures()[:5]
        # While both apps ran, Docker's DNS gave nginx both addresses.
        assert any(len(answer) == 2 for answer in addresses), addresses
        pages = [s for s in traffic.samples if s.path == "/"]
        assert {s.version for s in pages} == {"v1", "v2"}
        late = [s for s in pages if s.started > returned]
        assert late and all(s.version == "v2" and V2_TEXT in s.text for s in late), {(s.version) for s in late}
        # v2 answered before v1 was stopped: the traffic moved over while both ran.
        stopping = next(t for t, line in lines if "stopping the v1 containers" in line)
        assert min(s.started for s in pages if s.version == "v2") < stopping
        moved = re.search(r"all traffic on v2, (\d+)s after the command started", output)
        assert moved, output[-3000:]
        last_v1 = max(s.started + s.seconds for s in pages if s.version == "v1")
        print(f"[release] last v1 answer {last_v1 - started:.1f}s after the command; live: {moved.group(0)}")
        for service in ("app", "worker", "nginx"):
            images = project.running(service)
            assert images == [f"{project.slug}-{'static' if service == 'nginx' else 'app'}:v2"], (service, images)
        assert (project.path / ".release").read_text() == "TAG=v2\nPREVIOUS_TAG=v1\n"

    def test_2_rollback_brings_v1_back_without_a_failure(self, released):
        serving(released, "v2", previous="v1")
        traffic, *_, returned, _, _ = release_under_load(released, "rollback")
        assert traffic.failures() == [], traffic.failures()[:5]
        late = [s for s in traffic.samples if s.path == "/" and s.started > returned]
        assert late and all(s.version == "v1" and V1_TEXT in s.text for s in late)
        assert released.running("app") == [f"{released.slug}-app:v1"]
        assert (released.path / ".release").read_text() == "TAG=v1\nPREVIOUS_TAG=v2\n"

    def test_2b_the_backup_commands_act_on_the_tag_that_runs(self, released):
        """make backup and make backups without TAG use the images of the running tag (v1 since the rollback),
        not git describe's default (here: latest, which no image has)."""
        taken = released.make("backup")
        name = re.search(r"backup: OK (db-\d{8}T\d{6}Z\.dump\.age)", taken.output)
        assert name and ":latest" not in taken.output, taken.output[-3000:]
        assert f"{name.group(1)}\t" in released.make("backups").output

    def test_2c_restore_stops_worker_and_beat_and_both_see_the_restored_data(self, released):
        """make restore on a bake with Celery: the worker and beat are stopped while the backup is restored and
        started again; the page (through the stack) and a task the worker runs see the restored rows."""
        project = released
        model = f"from {project.slug}.models import Document as D"

        def shell(code: str) -> str:
            return project.live("exec", "-T", "app", "python", "manage.py", "shell", "-c", code).stdout.strip()

        shell(f"{model}; D.objects.create(title='E2E kept by the backup', file='documents/kept.txt')")
        name = re.search(r"backup: OK (db-\d{8}T\d{6}Z\.dump\.age)", project.make("backup").output).group(1)
        shell(f"{model}; D.objects.create(title='E2E added after the backup', file='documents/after.txt')")
        containers = {service: project.live("ps", "-q", service).stdout.strip() for service in ("worker", "beat")}
        started = {service: project.inspect(c)["State"]["StartedAt"] for service, c in containers.items()}
        stopped = set()
        with tempfile.TemporaryFile("w+") as log:
            # LIVE: the Makefile's own compose command names compose.prod.yaml alone; this one takes COMPOSE_FILE,
            # with compose.pebble.yaml (else the restarted edge would ask the real CA, as in production).
            process = subprocess.Popen(
                ["make", "restore", f"NAME={name}", "CONFIRM=yes", "LIVE=docker compose"],
                cwd=project.path,
                env=project.env(""),
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
            while process.poll() is None:
                for service, container in containers.items():
                    state = run(["docker", "inspect", "-f", "{{.State.Running}}", container], check=False).stdout
                    if state.strip() == "false":
                        stopped.add(service)
                time.sleep(0.3)
            log.seek(0)
            output = log.read()
        assert process.returncode == 0, output[-4000:]
        assert "stopping what writes (app nginx backup worker beat)" in output and f"done, {name} is live" in output
        assert stopped == {"worker", "beat"}, output[-3000:]
        for service in ("worker", "beat"):
            container = project.live("ps", "-q", service).stdout.strip()
            state = project.inspect(container)["State"]
            assert state["Running"] and state["StartedAt"] > started[service], (service, state)
            assert project.health("", service) == "healthy", service
        _, page = served_version(project)
        assert "E2E kept by the backup" in page and "E2E added after the backup" not in page
        count = shell(f"{model}; print(D.objects.count())").splitlines()[-1]
        task = f"from {project.slug}.tasks import count_documents as c; print(c.delay().get(timeout=60))"
        answer = shell(task).splitlines()[-1]
        worker = project.live("ps", "-q", "worker").stdout.strip()
        assert answer == repr({"documents": int(count), "worker": f"celery@{worker[:12]}"}), (answer, count)

    def test_3_a_release_that_never_becomes_healthy_leaves_v1_serving(self, released):
        project = released
        serving(project, "v1", previous="v2")  # as the rollback leaves it
        traffic, code, output, *_ = release_under_load(project, "release", "TAG=v3", check=False)
        assert code != 0
        assert re.search(
            r"release: \S+app-\d+ \(v3\) crashed: its last log lines are above\. Removing the new containers", output
        )
        assert "release: v3 was not released; v1 keeps serving. (The migrations of v3 stay applied.)" in output
        assert traffic.failures() == [], traffic.failures()[:5]
        assert {s.version for s in traffic.samples if s.path == "/"} == {"v1"}
        for service in ("app", "worker", "nginx"):
            assert len(project.running(service)) == 1, service
        assert project.running("app") == [f"{project.slug}-app:v1"]
        assert (project.path / ".release").read_text() == "TAG=v1\nPREVIOUS_TAG=v2\n"

    def test_3b_a_migration_that_fails_leaves_v1_serving(self, released):
        project = released
        derive(
            project, "v4", "COPY 0099_e2e_fails.py /app/users/migrations/\n", **{"0099_e2e_fails.py": FAILING_MIGRATION}
        )
        record = (project.path / ".release").read_text()
        traffic, code, output, *_ = release_under_load(project, "release", "TAG=v4", check=False)
        assert code != 0 and "RuntimeError: E2E: this migration fails on purpose" in output, output[-3000:]
        assert "release: the migrations of v4 failed: nothing else was changed, v1 keeps serving." in output
        assert traffic.failures() == [], traffic.failures()[:5]
        assert {s.version for s in traffic.samples if s.path == "/"} == {"v1"}
        for service in ("app", "worker", "beat"):
            assert project.running(service) == [f"{project.slug}-app:v1"], service
        assert (project.path / ".release").read_text() == record

    def test_3c_a_tag_never_healthy_times_out_and_a_second_release_meanwhile_is_refused(self, released):
        project = released
        # gunicorn listens on 8001: the app runs, and never answers its health check (on 8000).
        derive(project, "v5", "ENV PORT=8001\n")
        record = (project.path / ".release").read_text()
        second = {}

        def meanwhile(lines):
            if not second and any("release: starting app (v5)" in line for line in lines):
                second["locked"] = (project.path / ".release.lock").is_dir()
                second["result"] = project.make("release", "TAG=v2", check=False)

        project.overrides = {"RELEASE_TIMEOUT": "20"}
        try:
            traffic, code, output, *_ = release_under_load(
                project, "release", "TAG=v5", check=False, meanwhile=meanwhile
            )
        finally:
            project.overrides = {}
        assert code != 0
        assert re.search(r"release: \S+app-\d+ \(v5\) was not healthy after 20s: its last log lines are above", output)
        assert "release: v5 was not released; v1 keeps serving." in output, output[-3000:]
        refused = second["result"]
        assert second["locked"] and refused.returncode != 0, refused.output[-3000:]
        assert "another make release, rollback or deploy is running here (since" in refused.output, refused.output
        assert "Nothing was changed." in refused.output and "starting app" not in refused.output
        # The lock went with the failed release: the next one may start.
        assert not (project.path / ".release.lock").exists()
        assert traffic.failures() == [], traffic.failures()[:5]
        assert {s.version for s in traffic.samples if s.path == "/"} == {"v1"}
        for service in ("app", "worker", "nginx"):
            assert len(project.running(service)) == 1, service
        assert project.running("app") == [f"{project.slug}-app:v1"]
        assert (project.path / ".release").read_text() == record

    def test_3d_a_service_failing_after_the_traffic_moved_names_the_way_back(self, released):
        """The final `up` (beat, not rolled) fails once the traffic is on the new tag: the release says so, exits
        non-zero, and make rollback brings the old tag back."""
        project = released
        derive(project, "v6", "COPY --chmod=755 celery /opt/venv/bin/celery\n", celery=BEAT_FAILS)
        failed = project.make("release", "TAG=v6", check=False, timeout=TIMEOUT + 300)
        assert failed.returncode != 0, failed.output[-3000:]
        assert (
            "release: v6 serves the traffic, but a service above is not healthy: see docker compose logs SERVICE. "
            "make rollback brings back v1." in failed.output
        ), failed.output[-3000:]
        assert served_version(project)[0] == "v6"
        assert (project.path / ".release").read_text() == "TAG=v6\nPREVIOUS_TAG=v1\n"
        project.make("rollback", timeout=TIMEOUT + 300)
        assert served_version(project)[0] == "v1"
        for service in ("app", "worker", "beat"):
            assert project.running(service) == [f"{project.slug}-app:v1"], service
        assert project.health("", "beat") == "healthy"

    def test_4_bad_input_is_refused_and_nothing_changes(self, released):
        project = released
        app = project.live("ps", "-q", "app").stdout
        # Every missing image named, not only the first.
        missing = ", ".join(f"{project.slug}-{kind}:v9" for kind in ("app", "offsite", "static"))
        cases = {
            ("release",): "which tag? Usage: make release TAG=<tag>",
            ("release", "TAG=v9"): f"no images {missing} here, and none to pull: build them (make build-live TAG=v9)",
        }
        for args, message in cases.items():
            refused = project.make(*args, check=False)
            assert refused.returncode != 0 and message in refused.output, refused.output[-3000:]
            assert "Nothing was changed." in refused.output
        (project.path / ".release").unlink()
        refused = project.make("rollback", check=False)
        assert refused.returncode != 0, refused.output
        assert "no release is recorded in .release yet: make rollback undoes a make release or a make deploy." in (
            refused.output
        )
        assert project.live("ps", "-q", "app").stdout == app

    def test_5_without_an_edge_nginx_is_replaced_in_place(self, released):
        """compose.prod.yaml alone: nginx publishes LIVE_PORT itself and cannot run twice, so it is replaced in
        place. The app still moves over without a failure; the only failed requests are refused connections
        while nginx is replaced (the README's limit, which the HTTPS edge removes)."""
        project = released
        project.live("down", "--remove-orphans", "--timeout", "5")
        project.compose_file = BEHIND_PROXY
        deployed = project.make("release", "TAG=v1", timeout=TIMEOUT + 300)  # nothing runs: a plain deploy
        assert "v1 released" in deployed.output and "all traffic" not in deployed.output, deployed.output[-3000:]
        # Two app containers (docker compose up --scale app=2): the release keeps two.
        scale = ["docker", "compose", "up", "-d", "--wait", "--no-deps", "--no-recreate", "--scale", "app=2", "app"]
        run(scale, cwd=project.path, env={**project.env(""), "TAG": "v1"}, timeout=TIMEOUT)
        assert project.running("app") == [f"{project.slug}-app:v1"] * 2
        traffic, _, output, _, returned, lines, _ = release_under_load(project, "release", "TAG=v2")
        replacing = next(t for t, line in lines if "replacing nginx in place" in line)
        failures = traffic.failures()
        window = max(f.started + f.seconds for f in failures) - min(f.started for f in failures) if failures else 0
        kinds = collections.Counter(re.sub(r"\W.*", "", f.error) for f in failures)
        print(f"[release] without an edge: {len(failures)} failed requests in {window:.1f}s while nginx was replaced")
        print(f"[release] their errors: {dict(kinds)}; e.g. {failures[0].error if failures else None}")
        outside = [f for f in failures if f.status is not None or f.started + f.seconds < replacing]
        assert outside == [], outside[:5]
        late = [s for s in traffic.samples if s.path == "/" and s.started > returned]
        assert late and all(s.version == "v2" and V2_TEXT in s.text for s in late)
        assert project.running("nginx") == [f"{project.slug}-static:v2"]
        assert project.running("app") == [f"{project.slug}-app:v2"] * 2

    def test_6_the_asgi_application_loads_and_answers(self, released):
        """config/asgi.py (no ASGI server among the dependencies): imported in the live app container and called
        with an HTTP scope for the home page, as an ASGI server would."""
        project = released
        answered = project.live("exec", "-T", "app", "python", "-c", ASGI_REQUEST, DOMAIN, check=False)
        assert answered.returncode == 0, answered.stderr[-3000:]
        status, version, body = answered.stdout.split("\n", 2)
        running = project.inspect(project.live("ps", "-q", "app").stdout.split()[0])["Config"]["Env"]
        # The whole middleware chain (X-App-Version, the running tag), and the request's scheme (HTTPS) reached it.
        assert status == "200" and version and f"APP_VERSION={version}" in running, answered.stdout[:500]
        assert "Django is serving this page over HTTPS." in body

    def test_7_nginx_without_its_app_answers_502_then_follows_the_name(self, released):
        """nginx/run.sh with an upstream name (app) that does not resolve: nginx starts, says so in its log,
        answers 502, and proxies as soon as the name resolves. A TRUSTED_PROXIES name that does not resolve stops
        it at start, with a message."""
        project = released
        network = f"{project.slug}-e2e-lonely"
        image = f"{project.slug}-static:v1"
        run(["docker", "network", "create", network])
        nginx = None
        try:
            nginx = run(["docker", "run", "-d", "--network", network, image]).stdout.strip()
            get = ["docker", "exec", nginx, "wget", "-S", "-O", "/dev/null", "--header", f"Host: {DOMAIN}"]
            poll(
                lambda: "502 Bad Gateway" in run([*get, "http://127.0.0.1:8080/"], check=False).stderr,
                60,
                1,
                "nginx's 502 without its app",
            )
            assert "app could not be resolved" in run(["docker", "logs", nginx]).stderr
            assert run(["docker", "exec", nginx, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/nginx-health"]).stdout
            app = project.live("ps", "-q", "app").stdout.split()[0]
            run(["docker", "network", "connect", "--alias", "app", network, app])
            try:
                served = poll(
                    lambda: (
                        (r := run([*get, "http://127.0.0.1:8080/"], check=False).stderr) and "X-App-Version" in r and r
                    ),
                    60,
                    1,
                    "nginx to reach the app once its name resolves",
                )
                assert "502" not in served, served
            finally:
                run(["docker", "network", "disconnect", network, app], check=False)
            stopped = run(
                ["docker", "run", "--rm", "--network", network, "-e", "TRUSTED_PROXIES=edge", image],
                check=False,
                timeout=60,
            )
            assert stopped.returncode == 1, stopped
            assert "nginx-run: TRUSTED_PROXIES names edge, which does not resolve (is it running?)" in stopped.stderr
        finally:
            if nginx:
                run(["docker", "rm", "-f", nginx], check=False)
            run(["docker", "network", "rm", network], check=False)
