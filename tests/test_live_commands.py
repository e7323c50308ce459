"""Issue 21, the live commands as a new user types them: `make deploy` refuses a tag without images before it starts
anything, warns about the placeholder domain and contact, switches between the edge and BEHIND_PROXY=1 leaving
exactly the chosen stack, records what it deployed for `make rollback`; `make stop-live` stops either mode;
`make release` names every missing image; the edge's plain-HTTP redirect keeps a published HTTPS port and
redirects only the site's own names.

The edge gets its certificate from pebble (tests/compose.pebble.yaml, as in tests/test_edge.py), trusted alone.
The default answers without Celery or a store (fewer containers); the live images are built once, as tag `a`,
and tagged `b` too (APP_VERSION, hence X-App-Version, tells them apart). Its own project name ("E2E Live
Commands"). Needs a Docker engine (skipped without one, except under CI where that is a failure)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
import requests

from support import (
    DOMAIN,
    E2E_VARIANTS,
    TIMEOUT,
    Project,
    answers,
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
EDGE_FILES = "compose.prod.yaml:compose.pebble.yaml"
TRUSTED_PROXIES = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"


class LiveProject(Project):
    """The baked project, its live stack driven by make only; edge mode through pebble's override."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.http_port, self.https_port, self.pebble_port = free_port(), free_port(), free_port()
        self.trust: ssl.SSLContext | None = None
        self.plain_edge = False

    def make_env(self, behind_proxy: bool) -> dict[str, str]:
        if self.plain_edge:  # the README's trial on localhost: compose.prod.yaml alone, no test CA
            return clean_env(HTTP_PORT=str(self.http_port), HTTPS_PORT=str(self.https_port))
        ports = {"HTTP_PORT": self.http_port, "HTTPS_PORT": self.https_port, "PEBBLE_PORT": self.pebble_port}
        env = clean_env(
            **{k: str(v) for k, v in ports.items()},
            LIVE_PORT=str(self.live_port),
            EDGE_DOMAIN=DOMAIN,
            TRUSTED_PROXIES=TRUSTED_PROXIES,
        )
        # Edge mode adds the test's CA (the Makefile's LIVE_FILES); BEHIND_PROXY=1 is the Makefile's own files.
        return {**env, "BEHIND_PROXY": "1"} if behind_proxy else {**env, "LIVE_FILES": EDGE_FILES}

    def make(self, *args: str, behind_proxy: bool = False, check: bool = True, timeout: float = 900):
        """make as the user types it; .output is what the terminal shows (stdout and stderr interleaved)."""
        env = self.make_env(behind_proxy)
        result = subprocess.run(
            ["make", *args],
            cwd=self.path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        result.output = result.stdout
        if check and result.returncode != 0:
            pytest.fail(f"make {' '.join(args)} exited {result.returncode}\n{result.output[-4000:]}")
        return result

    def containers(self) -> dict[str, str]:
        """Every container of the live project, one-off ones too: name -> service."""
        listed = run(
            ["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={self.slug}-live"]
            + ["--format", '{{.Names}} {{.Label "com.docker.compose.service"}}']
        ).stdout
        return dict(line.split(" ", 1) for line in listed.splitlines() if line.strip())

    def everything(self, *args: str, **kwargs):
        """docker compose over every file and profile, for looking and cleaning up."""
        files = ["-f", "compose.prod.yaml", "-f", "compose.pebble.yaml", "--profile", "*"]
        return run(["docker", "compose", *files, *args], cwd=self.path, env=self.make_env(False), check=False, **kwargs)

    def tags(self) -> list[str]:
        return [f"{self.slug}-{kind}:{tag}" for kind in ("app", "static", "offsite") for tag in ("a", "b", "half")]

    def remove(self) -> None:
        self.everything("down", "-v", "--remove-orphans", "--timeout", "5", timeout=300)
        run(["docker", "rmi", "-f", *self.tags()], check=False)


def refused(port: int) -> bool:
    """Nothing answers on this loopback port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            return False
    except OSError:
        return True


def https(project: LiveProject, path: str = "/") -> httpx.Response | None:
    """GET https://DOMAIN/path through the edge's loopback port over HTTP/2, trusting pebble's root alone; None
    while the edge refuses the connection or has no certificate yet."""
    try:
        with httpx.Client(http2=True, verify=project.trust, timeout=30) as client:
            return client.get(
                f"https://127.0.0.1:{project.https_port}{path}",
                headers={"Host": DOMAIN},
                extensions={"sni_hostname": DOMAIN},
            )
    except (OSError, httpx.HTTPError):
        return None


def edge_version(project: LiveProject, tag: str) -> httpx.Response:
    """The home page through the edge once the app at `tag` serves it."""
    return poll(
        lambda: (page := https(project)) is not None and page.headers.get("X-App-Version") == tag and page,
        180,
        2,
        f"the page of {tag} through the edge",
    )


@pytest.fixture(scope="module")
def project(cookies_session):
    require_engine()
    options = answers(**E2E_VARIANTS["live-commands"])
    path = bake(cookies_session, project_name=stack_name("E2E Live Commands"), domain_name=DOMAIN, **options)
    project = LiveProject(path)
    shutil.copy(Path(__file__).parent / "compose.pebble.yaml", project.path)
    write_pebble_api_root(project.path)
    project.remove()  # what an interrupted earlier run left (the override above names the edge's volumes)
    try:
        project.make("build-live", "TAG=a", timeout=1800)
        for kind in ("app", "static", "offsite"):
            run(["docker", "tag", f"{project.slug}-{kind}:a", f"{project.slug}-{kind}:b"])
        yield project
    finally:
        print(project.everything("logs", "--no-color", "--tail", "60").stdout[-6000:])
        project.remove()
        run(["docker", "rmi", "-f", project.images["backup"]], check=False)  # make build-live's, of the major


def a_deployed(project: LiveProject, with_the_edge: bool = True) -> None:
    """Tag a deployed as test_2 deploys it (with the edge, unless any mode will do), the state the next tests start
    from: nothing to do after the test before, a deploy when a test runs alone (-k)."""
    release = project.path / ".release"
    running = set(project.containers().values())
    if release.exists() and release.read_text().startswith("TAG=a\n") and "app" in running:
        if "edge" in running or not with_the_edge:
            return
    project.make("deploy", "TAG=a", timeout=TIMEOUT + 300)
    project.trust = project.trust or pebble_issuing_root(project.path, project.pebble_port)


class TestLiveCommands:
    def test_1_a_tag_without_images_is_refused_before_anything_starts(self, project):
        # No TAG and nothing ran: git describe's guess, which has no image; and a tag with none, behind a proxy.
        for args, behind_proxy in ((("deploy",), False), (("deploy", "TAG=nope"), True)):
            result = project.make(*args, behind_proxy=behind_proxy, check=False)
            guessed = re.search(r"deploy: no TAG given: (\S+) \(the running tag; else the last", result.output)
            tag = guessed.group(1) if args == ("deploy",) else "nope"
            images = [f"{project.slug}-{kind}:{tag}" for kind in ("app", "offsite", "static")]
            assert result.returncode != 0, result.output[-3000:]
            missing = f"no images {', '.join(images)} here, and none to pull: build them (make build-live TAG={tag})"
            assert f"deploy: {missing}" in result.output, result.output[-3000:]
            assert "Nothing was changed." in result.output
            assert project.containers() == {}, "a container was created for a tag without images"
        # One image of three at a tag: the two missing ones named, not the one that is here.
        run(["docker", "tag", f"{project.slug}-app:a", f"{project.slug}-app:half"])
        result = project.make("release", "TAG=half", check=False)
        missing = f"no images {project.slug}-offsite:half, {project.slug}-static:half here, and none to pull"
        assert result.returncode != 0 and f"release: {missing}" in result.output, result.output[-3000:]
        assert project.containers() == {}
        # The backup commands check the same way (before: make backup started the database, took the backup,
        # then failed pulling the offsite image).
        missing = ", ".join(f"{project.slug}-{kind}:nope" for kind in ("app", "offsite", "static"))
        for args in (("backup",), ("backups",), ("restore", "CONFIRM=yes")):
            result = project.make(*args, "TAG=nope", check=False)
            assert result.returncode != 0, (args, result.output[-3000:])
            assert f"live: no images {missing} here, and none to pull" in result.output, (args, result.output[-3000:])
            assert project.containers() == {}, f"make {args[0]} created a container for a tag without images"

    def test_2_deploy_warns_about_placeholders_and_the_edge_serves(self, project):
        result = project.make("deploy", "TAG=a", timeout=TIMEOUT + 300)
        output = result.output
        # Before anything started: the bake's placeholders (an example.com domain, you@example.com).
        warned = output.index("deploy: WARNING: DOMAINS in .envs/edge.env is a placeholder (shop.example.com)")
        assert "deploy: WARNING: ACME_EMAIL in .envs/edge.env is a placeholder (you@example.com)" in output
        assert "docker compose -f compose.prod.yaml logs edge" in output
        assert warned < output.index("deploy: migrating the database with a"), output[-3000:]
        project.trust = pebble_issuing_root(project.path, project.pebble_port)
        page = edge_version(project, "a")
        assert page.status_code == 200 and page.http_version == "HTTP/2"
        assert (project.path / ".release").read_text() == "TAG=a\nPREVIOUS_TAG=\n"

    def test_2b_the_app_and_nginx_run_their_images_healthchecks(self, project):
        """compose.prod.yaml gives app and nginx a healthcheck's timing without its test: Docker fills the test in
        from the image's HEALTHCHECK (the Dockerfile's), so it is written once."""
        a_deployed(project)
        for service, path in (("app", "/healthz"), ("nginx", "/nginx-health")):
            (container,) = project.everything("ps", "-q", service).stdout.split()
            config = project.inspect(container)["Config"]
            image = json.loads(run(["docker", "image", "inspect", config["Image"]]).stdout)[0]["Config"]
            assert config["Healthcheck"]["Test"] == image["Healthcheck"]["Test"], (service, config["Healthcheck"])
            assert path in " ".join(config["Healthcheck"]["Test"]) and config["Healthcheck"]["Interval"] == 10 * 10**9
            assert project.inspect(container)["State"]["Health"]["Status"] == "healthy", service

    def test_3_the_plain_http_redirect_keeps_the_port_and_only_for_the_site(self, project):
        a_deployed(project)

        def plain(host: str) -> requests.Response:
            return requests.get(
                f"http://127.0.0.1:{project.http_port}/admin/login/?next=/admin/",
                headers={"Host": host},
                allow_redirects=False,
                timeout=30,
            )

        ours = plain(DOMAIN)
        assert ours.status_code == 301
        assert ours.headers["Location"] == f"https://{DOMAIN}:{project.https_port}/admin/login/?next=/admin/"
        assert plain(DOMAIN.upper()).status_code == 301
        for host in ("evil.example", f"{DOMAIN}.evil.example", f"evil.{DOMAIN}"):
            foreign = plain(host)
            assert foreign.status_code == 404 and "Location" not in foreign.headers, (host, foreign.headers)

    def test_4_switching_to_behind_proxy_leaves_no_edge(self, project):
        a_deployed(project)
        result = project.make("deploy", "TAG=a", behind_proxy=True, timeout=TIMEOUT + 300)
        assert "deploy: removing edge: not part of the stack in this mode" in result.output, result.output[-3000:]
        assert "WARNING" not in result.output  # no edge, no certificate to warn about
        services = set(project.containers().values())
        assert "edge" not in services and "pebble" not in services, services
        assert refused(project.http_port) and refused(project.https_port)
        page = requests.get(
            f"http://127.0.0.1:{project.live_port}/",
            headers={"Host": DOMAIN, "X-Forwarded-Proto": "https"},
            allow_redirects=False,
            timeout=30,
        )
        assert page.status_code == 200 and page.headers["X-App-Version"] == "a"
        assert (project.path / ".release").read_text() == "TAG=a\nPREVIOUS_TAG=\n"  # the same tag: kept

    def test_5_switching_back_with_a_new_tag_then_rollback(self, project):
        """A plain make deploy of b is recorded: make rollback brings a back (it said `already running` before)."""
        a_deployed(project, with_the_edge=False)  # test_4 leaves it behind a proxy
        project.make("deploy", "TAG=b", timeout=TIMEOUT + 300)
        assert edge_version(project, "b").status_code == 200
        assert refused(project.live_port), "nginx still published for the behind-proxy mode"
        assert (project.path / ".release").read_text() == "TAG=b\nPREVIOUS_TAG=a\n"
        rolled = project.make("rollback", timeout=TIMEOUT + 300)
        assert "release: rolling back to a" in rolled.output and "already running" not in rolled.output
        assert edge_version(project, "a").status_code == 200
        assert (project.path / ".release").read_text() == "TAG=a\nPREVIOUS_TAG=b\n"

    def test_6_stop_live_stops_either_mode_and_keeps_the_data(self, project):
        a_deployed(project)
        # The edge runs, and this shell says BEHIND_PROXY=1 (whose files leave the edge out): it goes all the same.
        assert "edge" in project.containers().values()
        project.make("stop-live", behind_proxy=True, timeout=300)
        assert project.containers() == {}
        assert refused(project.http_port) and refused(project.https_port)
        volumes = run(
            ["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={project.slug}-live"]
        ).stdout.split()
        assert {f"{project.slug}-live_{name}" for name in ("postgres18_data", "media", "caddy_data")} <= set(volumes)
        # Stopped, a live command without TAG takes the tag that ran last, not git describe's guess.
        status = project.make("status-live")
        assert "tag: a (stopped; it ran last)" in status.output, status.output[-2000:]

    def test_7_a_trial_on_localhost_with_caddys_own_ca_as_the_readme_says(self, project):
        """DOMAINS=localhost, no Caddyfile edit: Caddy certifies it with its own CA, whose root the README copies
        out; the redirect keeps the HTTPS port. Ports from HTTP_PORT/HTTPS_PORT (on every address, as a user's)."""
        if not (project.path / ".release").exists():  # run alone: a tag that ran last, as test_6 leaves it
            a_deployed(project)

        def setting(file: str, name: str, value: str) -> None:
            path = project.path / ".envs" / file
            path.write_text(re.sub(rf"^{name}=.*$", f"{name}={value}", path.read_text(), flags=re.M))

        setting("edge.env", "DOMAINS", "localhost")
        setting("prod.env", "ALLOWED_HOSTS", "localhost")
        setting("prod.env", "CSRF_TRUSTED_ORIGINS", f"https://localhost:{project.https_port}")
        setting("prod.env", "SECURE_HSTS_SECONDS", "0")
        project.plain_edge = True
        try:
            result = project.make("deploy", timeout=TIMEOUT + 300)  # the tag that ran last, a
            assert "deploy: no TAG given: a" in result.output and "WARNING" not in result.output, result.output[-3000:]
            copy = ["docker", "compose", "-f", "compose.prod.yaml", "cp"]
            copy += ["edge:/data/caddy/pki/authorities/local/root.crt", "caddy-root.crt"]
            poll(
                lambda: run(copy, cwd=project.path, env=project.make_env(False), check=False).returncode == 0,
                60,
                2,
                "Caddy's root",
            )
            trust = ssl.create_default_context(cafile=str(project.path / "caddy-root.crt"))

            def page():
                try:
                    with httpx.Client(http2=True, verify=trust, timeout=30) as client:
                        answer = client.get(f"https://localhost:{project.https_port}/")
                except (OSError, httpx.HTTPError):
                    return None
                return answer.status_code == 200 and answer

            served = poll(page, 120, 2, "the page on https://localhost")
            assert served.http_version == "HTTP/2" and served.headers["X-App-Version"] == "a"
            plain = requests.get(f"http://localhost:{project.http_port}/admin/", allow_redirects=False, timeout=30)
            assert plain.status_code == 301
            assert plain.headers["Location"] == f"https://localhost:{project.https_port}/admin/"
        finally:
            project.plain_edge = False
