"""Issue 20, containment: the live stack (compose.prod.yaml, with its edge) keeps its services apart. The edge faces
the internet, so a break-in there must not reach the database, the store or the app (bypassing nginx); nginx must
not reach the database or the store; offsite, holding keys to the bucket, reaches none of them. Every service runs
under a memory and a pids limit. A request straight to the app from another container (not nginx) that claims HTTPS
and an address is not believed.

It runs on tests/test_edge.py's stack (conftest's edge_stack: the default answers, Valkey and Celery, its live
images built once, up with its edge against pebble, tests/compose.pebble.yaml), after that file's tests. The probes
run in a throwaway container that joins the network namespace of the service probed from (`--network container:`):
exactly what a process inside that container reaches, by name and by each address of the target. Needs a Docker
engine (skipped without one, except under CI where that is a failure)."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from support import (
    DOMAIN,
    EDGE,
    LIVE,
    TIMEOUT,
    EdgeProject,
    answered,
    clean_env,
    https,
    pebble_issuing_root,
    poll,
    run,
)

pytestmark = pytest.mark.e2e
STORE = "valkey"
READY = (
    "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=10).read().decode())"
)
PORTS = {"db": 5432, STORE: 6379, "app": 8000, "nginx": 8080}
# Connects to each host:port given and prints {target: "open" or the error's name}.
PROBE = """
import json, socket, sys
results = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        results[target] = "open"
    except OSError as error:
        results[target] = type(error).__name__
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def stack(edge_stack):
    """The edge's stack (tests/test_edge.py runs on it first), with its edge."""
    edge_stack.edge_mode()
    return edge_stack


def reachable_from(project: EdgeProject, service: str, targets: list[str]) -> dict[str, bool]:
    """For each target service: does a connection from inside `service` reach its port, by its name or by any
    of its addresses (on any network)? The detail of each attempt is printed."""
    attempts = {}
    for target in targets:
        attempts[target] = [f"{target}:{PORTS[target]}"] + [
            f"{network['IPAddress']}:{PORTS[target]}"
            for network in project.inspect(project.container(EDGE, target))["NetworkSettings"]["Networks"].values()
        ]
    probe = ["docker", "run", "--rm", "--network", f"container:{project.container(EDGE, service)}"]
    probe += ["--entrypoint", "python", project.images["applayer"], "-c", PROBE]
    results = json.loads(run([*probe, *(a for group in attempts.values() for a in group)]).stdout)
    print(f"[containment] from {service}: {results}")
    return {target: any(results[a] == "open" for a in group) for target, group in attempts.items()}


def test_1_services_reach_only_what_they_need(stack):
    # Off-site copies are off in this stack, so the offsite service (a profile of its own) is started by name.
    stack.edge("up", "-d", "--wait", "--wait-timeout", str(TIMEOUT), "offsite", timeout=TIMEOUT + 60)
    reached = {
        "edge": reachable_from(stack, "edge", ["db", STORE, "app", "nginx"]),
        "nginx": reachable_from(stack, "nginx", ["db", STORE, "app"]),
        "offsite": reachable_from(stack, "offsite", ["db", STORE, "app", "nginx"]),
        "backup": reachable_from(stack, "backup", ["db", "nginx"]),
    }
    assert reached == {
        # The internet-facing edge: nginx only.
        "edge": {"db": False, STORE: False, "app": False, "nginx": True},
        # nginx: the app only, never the data.
        "nginx": {"db": False, STORE: False, "app": True},
        # The off-site copier: nothing of the stack (it reads the backups folder and talks to S3).
        "offsite": {"db": False, STORE: False, "app": False, "nginx": False},
        # The backup service: the database, never the edge's side (it shares the internal data network with
        # the store and the app's containers).
        "backup": {"db": True, "nginx": False},
    }


def test_2_the_site_still_works_through_the_edge(stack):
    """The contained stack still serves: HTTPS at the edge (certificate from pebble), nginx, the app, the
    database and the store (/readyz from inside, as the orchestrator asks)."""
    trust = pebble_issuing_root(stack.path, stack.pebble_port)  # only the root pebble issues under
    page = poll(answered(lambda: (r := https(stack, trust)).status_code == 200 and r), 180, 2, "the page")
    assert "serving this page over HTTPS" in page.text
    ready = json.loads(stack.edge("exec", "-T", "app", "python", "-c", READY).stdout)
    assert (ready["database"], ready[STORE]) == ("ok", "ok"), ready


def test_3_every_service_runs_under_memory_and_pids_limits(stack):
    limits = {}
    for service in stack.edge("ps", "--services").stdout.split():
        if service == "pebble":  # the test's CA
            continue
        host = stack.inspect(stack.container(EDGE, service))["HostConfig"]
        limits[service] = (host["Memory"], host["PidsLimit"])
    print(f"[containment] limits (bytes, pids): {limits}")
    assert limits and all(memory > 0 and (pids or 0) > 0 for memory, pids in limits.values()), limits
    # Overridable from the environment.
    env = clean_env(**stack.env(EDGE), APP_MEM_LIMIT="300m", APP_PIDS_LIMIT="77")
    config = json.loads(run(stack.command(EDGE, "config", "--format", "json"), cwd=stack.path, env=env).stdout)
    assert (int(config["services"]["app"]["mem_limit"]), config["services"]["app"]["pids_limit"]) == (300 << 20, 77)


def test_4_the_app_ignores_forwarded_headers_from_anyone_but_nginx(stack):
    """From a container that reaches the app directly (the worker's network namespace), a request claiming
    HTTPS and a client address: Django sees plain HTTP (redirect, no HSTS) and the log the real peer."""
    marker = uuid.uuid4().hex
    script = (
        "import http.client; c = http.client.HTTPConnection('app', 8000, timeout=20);"
        f" c.request('GET', '/?probe={marker}', headers={{'Host': '{DOMAIN}', 'X-Forwarded-Proto': 'https',"
        " 'X-Forwarded-For': '203.0.113.9', 'X-Forwarded-Ssl': 'on', 'Forwarded': 'for=203.0.113.9;proto=https'});"
        " r = c.getresponse(); print(r.status, r.getheader('Location'), r.getheader('Strict-Transport-Security'))"
    )
    probe = ["docker", "run", "--rm", "--network", f"container:{stack.container(EDGE, 'worker')}"]
    answer = run([*probe, "--entrypoint", "python", stack.images["applayer"], "-c", script]).stdout.split()
    print(f"[containment] straight to the app, claiming HTTPS: {answer}")
    assert answer == ["301", f"https://{DOMAIN}/?probe={marker}", "None"], "the app believed the claim"
    assert stack.app_log_address(marker) != "203.0.113.9"


def test_5_behind_a_proxy_on_this_host_only_the_gateway_is_believed(stack):
    """compose.behind-proxy.yaml (no edge, nginx on LIVE_PORT) with the README's advice for a proxy on the same
    host, TRUSTED_PROXIES=gateway: the host's request through the published port arrives from the public
    network's gateway and is believed; a container of the stack (the worker's namespace) talking to nginx
    directly is not. The old advice, Docker's whole ranges, believed that container too."""
    claim = {"Host": DOMAIN, "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    script = (
        "import http.client, sys; c = http.client.HTTPConnection('nginx', 8080, timeout=20);"
        f" c.request('GET', '/?probe=' + sys.argv[1], headers={claim!r}); print(c.getresponse().status)"
    )
    probe = ["docker", "run", "--rm", "--network", f"container:{stack.container(EDGE, 'worker')}"]
    probe += ["--entrypoint", "python", stack.images["applayer"], "-c", script]
    results = {}
    for trusted in ("172.16.0.0/12,192.168.0.0/16", "gateway"):
        stack.trusted_proxies = trusted
        stack.compose(LIVE, "up", "-d", "--wait", "--wait-timeout", str(TIMEOUT), "nginx", timeout=TIMEOUT + 60)
        host, container = uuid.uuid4().hex, uuid.uuid4().hex
        page = requests.get(
            f"http://127.0.0.1:{stack.live_port}/?probe={host}", headers=claim, allow_redirects=False, timeout=30
        )
        status = int(run([*probe, container]).stdout.split()[-1])
        results[trusted] = {
            "host": (page.status_code, stack.app_log_address(host) == "203.0.113.9"),
            "container": (status, stack.app_log_address(container) == "203.0.113.9"),
        }
    print(f"[containment] behind a proxy on this host, (status, claimed address believed): {results}")
    assert results == {
        "172.16.0.0/12,192.168.0.0/16": {"host": (200, True), "container": (200, True)},  # the old advice
        "gateway": {"host": (200, True), "container": (301, False)},
    }
