"""Issue 12, releases without downtime: `make release TAG=...` and `make rollback` (release.sh) on the live stack,
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

    def env(self, file):
        ports = {"HTTP_PORT": self.http_port, "HTTPS_PORT": self.https_port, "PEBBLE_PORT": self.pebble_port}
        return clean_env(
            **{name: str(port) for name, port in ports.items()},
            LIVE_PORT=str(self.live_port),
            EDGE_DOMAIN=DOMAIN,
            TRUSTED_PROXIES=TRUSTED_PROXIES,
            COMPOSE_FILE=self.compose_file,
            LIVE_FILES=self.compose_file,  # the Makefile's files for release.sh
            RELEASE_TIMEOUT=str(TIMEOUT),  # a broken tag is caught as crashed, long before this
        )

    def command(self, file, *args: str) -> list[str]:
        return ["docker", "compose", *args]  # COMPOSE_FILE names the files

    def make(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        result = run(["make", *args], cwd=self.path, env=self.env(""), timeout=timeout, check=False)
        result.output = result.stdout + result.stderr
        if check and result.returncode != 0:
            pytest.fail(f"make {' '.join(args)} exited {result.returncode}\n{result.output[-4000:]}")
        return result

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
        return [f"{self.slug}-{kind}:{tag}" for kind in ("app", "static", "offsite") for tag in ("v1", "v2", "v3")]

    def remove(self) -> None:
        self.live("down", "-v", "--remove-orphans", "--timeout", "5", check=False)
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


def release_under_load(project: ReleaseProject, *make_args: str, check: bool = True):
    """make with these arguments while the load runs: (the load, the result, when the command returned,
    when it printed its lines)."""
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
        print(f"[release] last v1 answer {last_v1 - started:.1f}s after the command; release.sh: {moved.group(0)}")
        for service in ("app", "worker", "nginx"):
            images = project.running(service)
            assert images == [f"{project.slug}-{'static' if service == 'nginx' else 'app'}:v2"], (service, images)
        assert (project.path / ".release").read_text() == "TAG=v2\nPREVIOUS_TAG=v1\n"

    def test_2_rollback_brings_v1_back_without_a_failure(self, released):
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

    def test_3_a_release_that_never_becomes_healthy_leaves_v1_serving(self, released):
        project = released
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
