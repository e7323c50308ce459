"""Issue 12, automatic HTTPS: the live stack's edge (Caddy, compose.prod.yaml) obtains its certificate over ACME from
pebble, Let's Encrypt's test CA, which really validates the domain against the edge (the domain is the edge's alias
on the stack's network). A test-only override (PEBBLE) adds pebble, points the edge's ACME_CA at it and publishes
the edge on loopback ports. Also the trust rules for X-Forwarded-*: at the edge, at nginx inside the network, and
in the behind-proxy mode (compose.behind-proxy.yaml).

The stack is conftest's edge_stack (the default answers, built and started once), which tests/test_containment.py
uses after these tests; everything it creates is removed when its worker ends (`down -v`, its images). Needs a
Docker engine (skipped without one, except under CI where that is a failure)."""

from __future__ import annotations

import re
import uuid

import pytest
import requests

from support import (
    DOMAIN,
    EDGE,
    LIVE,
    TIMEOUT,
    answered,
    bake,
    https,
    pebble_issuing_root,
    poll,
    require_engine,
    run,
    served_certificate,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(edge_stack):
    edge_stack.edge_mode()
    return edge_stack


@pytest.fixture(scope="module")
def edge(project):
    """Trust in the root pebble signs certificates under, alone (not the machine's, not pebble's API root)."""
    return pebble_issuing_root(project.path, project.pebble_port)


@pytest.fixture(scope="module")
def certificate(project, edge) -> tuple[dict, bytes]:
    """The certificate the edge serves once it has one (Caddy asks for it when it starts): parsed, and in DER."""
    return poll(answered(lambda: served_certificate(project.https_port, edge)), 180, 2, "a certificate")


class TestEdge:
    def test_1_https_with_a_certificate_issued_over_acme_and_http2(self, project, edge, certificate):
        # Pebble validated the domain against the edge and signed under the root the test trusts alone.
        certificate, _ = certificate
        assert certificate["subjectAltName"] == (("DNS", DOMAIN),)
        issuer = dict(pair[0] for pair in certificate["issuer"])
        assert issuer["commonName"].startswith("Pebble Intermediate CA"), issuer
        logs = project.logs(EDGE, "edge")
        assert "certificate obtained successfully" in logs and "pebble:14000" in logs
        # Pebble validated the domain over HTTP-01, against the edge's port 80.
        tried = re.findall(r'"challenge_type":"([a-z0-9-]+)"', logs)
        assert tried and tried[-1] == "http-01" and "authorization finalized" in logs, logs[-3000:]
        print(f"[edge] challenges tried for {DOMAIN}: {tried}")

        page = https(project, edge)
        assert page.status_code == 200 and page.http_version == "HTTP/2"
        assert "serving this page over HTTPS" in page.text
        # HSTS once, from Django (the edge adds none of its own).
        assert page.headers.get_list("Strict-Transport-Security") == ["max-age=3600"]
        # The readiness probe is for the orchestrator: the edge does not pass it on.
        assert https(project, edge, "/readyz").status_code == 404

    def test_2_plain_http_only_redirects_to_https(self, project, edge):
        for headers in ({}, {"X-Forwarded-Proto": "https"}):
            plain = requests.get(
                f"http://127.0.0.1:{project.http_port}/admin/login/?next=/admin/",
                headers={"Host": DOMAIN, **headers},
                allow_redirects=False,
                timeout=30,
            )
            assert plain.status_code == 301, headers
            # The published HTTPS port is not 443 here: the redirect keeps it (tests/test_live_commands.py: and
            # redirects the site's own names only).
            location = f"https://{DOMAIN}:{project.https_port}/admin/login/?next=/admin/"
            assert plain.headers["Location"] == location, headers
            assert "Strict-Transport-Security" not in plain.headers

    def test_3_the_edge_sets_the_forwarded_headers_from_the_connection(self, project, edge):
        marker = uuid.uuid4().hex
        page = https(
            project,
            edge,
            f"/?probe={marker}",
            headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "http"},
        )
        # HTTPS at the edge: Django sees https whatever the client claimed (no redirect, HSTS sent).
        assert page.status_code == 200 and page.headers["Strict-Transport-Security"] == "max-age=3600"
        # The client is the connection's address (the host, through the network's gateway), not its claim.
        assert project.app_log_address(marker) == project.network_gateway()

    def test_4_nginx_ignores_forwarded_headers_from_anyone_but_the_edge(self, project, edge):
        """Another container on the stack's network talks to nginx directly, claiming HTTPS and an address."""
        marker = uuid.uuid4().hex
        script = (
            "import http.client, sys; c = http.client.HTTPConnection('nginx', 8080, timeout=20);"
            f" c.request('GET', '/?probe={marker}', headers={{'Host': '{DOMAIN}', 'X-Forwarded-Proto': 'https',"
            " 'X-Forwarded-For': '203.0.113.9'}); r = c.getresponse();"
            " print(r.status, r.getheader('Location'), r.getheader('Strict-Transport-Security'))"
        )
        command = ["docker", "run", "--rm", "--network", project.network, "--entrypoint", "python"]
        answer = run([*command, project.images["applayer"], "-c", script]).stdout.split()
        assert answer == ["301", f"https://{DOMAIN}/?probe={marker}", "None"], "Django believed the claim"
        assert project.app_log_address(marker) != "203.0.113.9"

    def test_4b_only_the_edge_is_published_and_it_keeps_one_capability(self, project, edge):
        for service in project.edge("config", "--services").stdout.split():
            if service == "pebble":  # the test's CA
                continue
            bindings = project.inspect(project.container(EDGE, service))["HostConfig"]["PortBindings"] or {}
            published = sorted(port for port, hosts in bindings.items() if hosts)
            assert published == (["443/tcp", "80/tcp"] if service == "edge" else []), service
        fields = project.process_status(EDGE, "edge")
        net_bind_service = 1 << 10
        assert int(fields["CapBnd"], 16) == net_bind_service and fields["NoNewPrivs"].strip() == "1"
        write = project.edge("exec", "-T", "edge", "touch", "/probe", check=False)
        assert write.returncode != 0 and "Read-only file system" in write.stderr
        environment = project.edge("exec", "-T", "edge", "env").stdout
        assert "SECRET_KEY" not in environment and "DATABASE_URL" not in environment, "the edge sees the app's env"

    def test_5_a_restarted_edge_serves_the_same_certificate(self, project, edge, certificate):
        _, first = certificate
        project.edge("restart", "edge", timeout=TIMEOUT)
        _, der = poll(answered(lambda: served_certificate(project.https_port, edge)), 120, 2, "the restarted edge")
        assert der == first, "the restart issued a new certificate instead of reusing the stored one"
        whole_log = project.edge("logs", "--no-color", "edge").stdout
        assert whole_log.count("certificate obtained successfully") == 1, "asked the CA again"
        # nginx still believes the restarted edge: the page, not a redirect to itself.
        page = poll(answered(lambda: (r := https(project, edge)).status_code == 200 and r), 60, 2, "the page")
        assert page.http_version == "HTTP/2"
        # A new edge container (a changed Caddyfile, a new image) too: same certificate, from the volume, and
        # nginx, restarted by Compose, believes it at its new address.
        before = project.container(EDGE, "edge")
        project.edge("up", "-d", "--wait", "--force-recreate", "edge", timeout=TIMEOUT)
        assert project.container(EDGE, "edge") != before
        _, der = poll(answered(lambda: served_certificate(project.https_port, edge)), 120, 2, "the new edge")
        assert der == first
        page = poll(answered(lambda: (r := https(project, edge)).status_code == 200 and r), 60, 2, "the page")
        assert "serving this page over HTTPS" in page.text

    def test_5b_nginx_follows_an_edge_that_docker_moved_to_another_address(self, project, edge):
        """Docker alone (a crash and its restart policy, no Compose) may bring the edge back on another address:
        nginx looks the name up again and reloads, so it goes on believing the edge, and pages do not turn
        into redirects to themselves."""
        network = project.network
        edge_id = project.container(EDGE, "edge")

        def address() -> str:
            return project.inspect(edge_id)["NetworkSettings"]["Networks"][network]["IPAddress"]

        before = address()
        run(["docker", "network", "disconnect", network, edge_id])
        # Something else takes the freed address, as another container starting meanwhile would.
        squatter = run(
            ["docker", "run", "-d", "--rm", "--network", network, "--entrypoint", "sleep"]
            + [project.images["applayer"], "300"]
        )
        try:
            aliases = ["--alias", "edge", "--alias", DOMAIN]
            run(["docker", "network", "connect", *aliases, network, edge_id])
            assert address() != before, "the edge came back on its old address: nothing to prove"
            # Until nginx trusts the new address, Django sees plain HTTP and answers a redirect to the same URL.
            page = poll(answered(lambda: (r := https(project, edge)).status_code == 200 and r), 60, 2, "the page")
            assert "serving this page over HTTPS" in page.text
            poll(
                lambda: "a name in TRUSTED_PROXIES moved; reloading" in project.logs(EDGE, "nginx"), 30, what="the log"
            )
        finally:
            run(["docker", "rm", "-f", squatter.stdout.strip()], check=False)

    def test_6_behind_a_proxy_forwarded_headers_count_only_from_trusted_proxies(self, project, edge):
        """compose.behind-proxy.yaml: nginx published on LIVE_PORT, no edge. Without TRUSTED_PROXIES (the
        default) a client's X-Forwarded-Proto is ignored; with the client's address among them it counts."""
        results = {}
        for trusted in ("", "192.0.2.1", "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"):
            project.trusted_proxies = trusted
            project.compose(LIVE, "up", "-d", "--wait", "--wait-timeout", str(TIMEOUT), "nginx", timeout=TIMEOUT + 60)
            marker = uuid.uuid4().hex
            page = requests.get(
                f"http://127.0.0.1:{project.live_port}/?probe={marker}",
                headers={"Host": DOMAIN, "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"},
                allow_redirects=False,
                timeout=30,
            )
            hsts = page.headers.get("Strict-Transport-Security")
            results[trusted] = (page.status_code, hsts, project.app_log_address(marker))
        gateway = project.network_gateway()
        assert results == {
            "": (301, None, gateway),
            "192.0.2.1": (301, None, gateway),
            "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16": (200, "max-age=3600", "203.0.113.9"),
        }


def test_several_domains_are_separated_by_spaces_as_edge_env_says(cookies):
    """DOMAINS is substituted into the Caddyfile's site address: names separated by spaces (or ", ") are
    several sites; a bare comma stops Caddy with its own advice. edge.env's comment says so."""
    require_engine()
    project = bake(cookies, project_name="Caddy Domains")
    assert "separated by spaces" in (project / ".envs/edge.env.example").read_text()
    caddy = re.search(r"image: (caddy:\S+)", (project / "compose.prod.yaml").read_text()).group(1)

    def adapt(domains: str):
        return run(
            ["docker", "run", "--rm", "-e", f"DOMAINS={domains}", "-e", "ACME_EMAIL=ops@example.org"]
            + ["-v", f"{project / 'Caddyfile'}:/etc/caddy/Caddyfile:ro", caddy]
            + ["caddy", "adapt", "--config", "/etc/caddy/Caddyfile"],
            check=False,
        )

    for domains in ("shop.example.org www.example.org", "shop.example.org, www.example.org"):
        adapted = adapt(domains)
        assert adapted.returncode == 0, adapted.stderr
        hosts = re.findall(r'"host":\[([^\]]*)\]', adapted.stdout)
        assert '"shop.example.org","www.example.org"' in hosts, (domains, hosts)
    refused = adapt("shop.example.org,www.example.org")
    assert refused.returncode != 0 and "put a space after the comma" in refused.stderr, refused.stderr
