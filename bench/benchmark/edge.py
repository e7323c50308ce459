"""The HTTPS edge (issue #12): the live stack as deployed, Caddy in front of nginx, with its certificate issued
over ACME by pebble (Let's Encrypt's test CA; the override tests/compose.pebble.yaml that tests/test_edge.py
uses). Requests per second and p99 for a static file and the home page through the edge (HTTPS), beside the
same through nginx alone (plain HTTP), in alternating rounds; and a release (`make release TAG=...`) under
load, timed from the command to all traffic on the new tag.

wrk runs in a container on the stack's network: there the domain resolves to the edge (its alias), so the
TLS handshake carries the real server name, and nginx is reachable directly. Nothing leaves the machine."""

from __future__ import annotations

import json
import shutil
import threading
import time
from typing import TYPE_CHECKING

from .backups import build_offsite
from .common import IMAGES, MANIFEST, ROOT, TAG, BenchError, clean_env, free_port, log, run
from .engine import ENGINE, in_image, remember_image
from .live import compose, migrate
from .load import mean_load, parse_wrk

if TYPE_CHECKING:
    from .state import Run

EDGE_PROJECT = "bench-edge"
WRK_IMAGE = "bench-wrk:run"
PEBBLE_IMAGE = "ghcr.io/letsencrypt/pebble:2.10.1"  # pinned as in tests/support.py
FILES = ("compose.prod.yaml", "compose.pebble.yaml", "compose.bench-edge.yaml")
# The load generator is another container on the network: nginx believes its X-Forwarded-Proto (as it would
# a load balancer's), so "nginx alone" serves the page as the edge's requests get it, not a redirect.
BENCH_OVERRIDE = """services:
  nginx:
    environment:
      TRUSTED_PROXIES: edge,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16
"""
NEW_TAG = f"{TAG}-next"  # the release: the same images under a second tag, so APP_VERSION moves


def wrk_image(ctx: Run) -> None:
    """wrk from Debian's package, on the project's own Python base (a stand-in here, any registry elsewhere)."""
    dockerfile = ctx.work / "wrk.Dockerfile"
    dockerfile.write_text(
        f"FROM python:{ctx.python}-slim\n"
        "RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk"
        " && rm -rf /var/lib/apt/lists/*\n"
    )
    run(["docker", "build", "-q", "-t", WRK_IMAGE, "-f", str(dockerfile), str(ctx.work)], timeout=900)
    remember_image(WRK_IMAGE)


def wrk(ctx: Run, network: str, url: str, headers: dict[str, str], label: str) -> dict:
    """One wrk figure from inside the stack's network (after an unmeasured warm-up)."""
    args = ctx.args
    flags = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
    base = ["docker", "run", "--rm", "--network", network, WRK_IMAGE, "wrk"]
    base += ["-t", str(args.threads), "-c", str(args.connections), "--timeout", "5s", "--latency", *flags]
    if args.warmup:
        run([*base, "-d", f"{args.warmup}s", url], timeout=args.warmup + 120)
    out = run([*base, "-d", f"{args.duration}s", url], timeout=args.duration + 120).stdout
    with open(ctx.log_file, "a") as handle:
        handle.write(f"\n### wrk {label}: {url}\n{out}")
    result = parse_wrk(out)
    if result["socket_errors"] or result["non_2xx_3xx"]:
        raise BenchError(f"{label}: {result['socket_errors']} socket errors, {result['non_2xx_3xx']} non-2xx")
    log(f"  {label}: {result['requests_per_s']:.0f} req/s, p99 {result['p99_ms']} ms")
    return result


def https_status(network: str, domain: str, path: str) -> str:
    """The status of one HTTPS request to the edge from inside the network (the certificate is pebble's, not
    checked here: the tests do that), or the error's name."""
    script = (
        "import ssl, http.client\n"
        f"c = http.client.HTTPSConnection('{domain}', 443, context=ssl._create_unverified_context(), timeout=10)\n"
        "try:\n"
        f"    c.request('GET', '{path}'); print(c.getresponse().status)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    command = ["docker", "run", "--rm", "--network", network, "--entrypoint", "python", WRK_IMAGE, "-c", script]
    return run(command, check=False, timeout=120).stdout.strip()


def version_probe(domain: str, seconds: float) -> str:
    """A Python loop for a throwaway container that asks the edge for the version marker every 50 ms and prints
    `<epoch seconds> <status> <X-App-Version>` per request, for `seconds`."""
    script = (
        "import ssl, sys, time, http.client\n"
        "ctx = ssl._create_unverified_context()\n"
        f"end = time.time() + {seconds}\n"
        "while time.time() < end:\n"
        f"    c = http.client.HTTPSConnection('{domain}', 443, context=ctx, timeout=10)\n"
        "    try:\n"
        "        c.request('GET', '/healthz'); r = c.getresponse(); r.read()\n"
        "        print(f'{time.time():.3f} {r.status} {r.getheader(\"X-App-Version\")}', flush=True)\n"
        "    except Exception as exc:\n"
        "        print(f'{time.time():.3f} ERR {type(exc).__name__}', flush=True)\n"
        "    finally:\n"
        "        c.close()\n"
        "    time.sleep(0.05)\n"
    )
    return script


def release(ctx: Run, env: dict, network: str) -> dict:
    """`make release TAG=<new>` while a probe asks the edge for the version: the command's time, when the new
    version first answered, and when the last old answer came (all traffic on the new tag after it)."""
    for kind in ("app", "static", "offsite"):
        run(["docker", "tag", IMAGES[kind], f"{IMAGES[kind].split(':')[0]}:{NEW_TAG}"])
    window = 600  # at most; the probe is stopped a few seconds after the command returns
    name = f"{EDGE_PROJECT}-probe"
    probe = ["docker", "run", "--rm", "--name", name, "--network", network, "--entrypoint", "python", WRK_IMAGE, "-c"]
    output: dict[str, str] = {}
    thread = threading.Thread(
        target=lambda: output.update(probe=run([*probe, version_probe(ctx.domain, window)], check=False).stdout),
        daemon=True,
    )
    thread.start()
    time.sleep(3)  # the probe has answers from the old tag first
    started = time.time()
    result = run(["make", "release", f"TAG={NEW_TAG}"], cwd=ctx.project, env=env, check=False, timeout=600)
    finished = time.time()
    time.sleep(3)  # answers after the command returned
    run(["docker", "rm", "-f", name], check=False)
    thread.join(timeout=60)
    if result.returncode != 0:
        raise BenchError(f"make release exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    answers = [line.split() for line in output.get("probe", "").splitlines() if line.strip()]
    during = [a for a in answers if float(a[0]) >= started]
    failed = [a for a in answers if a[1] != "200"]
    first_new = next((float(a[0]) for a in during if a[2] == NEW_TAG), None)
    last_old = max((float(a[0]) for a in during if a[2] == TAG), default=started)
    if first_new is None or failed:
        raise BenchError(f"release probe: first new answer {first_new}, failed answers {failed[:5]}")
    figures = {
        "command_s": finished - started,
        "first_new_version_s": first_new - started,
        "all_traffic_new_s": last_old - started,
        "probe_requests": len(answers),
        "probe_failed": len(failed),
    }
    log(
        f"release: command {figures['command_s']:.1f}s, new version first at {figures['first_new_version_s']:.1f}s,"
        f" last old answer at {figures['all_traffic_new_s']:.1f}s, {len(answers)} probes, 0 failed"
    )
    return figures


def edge_stack(ctx: Run) -> None:
    standins = ENGINE / "standins"
    if standins.exists():  # the edge's images are named only in compose.prod.yaml, which the scan leaves out
        run([str(standins), "caddy:2.11", PEBBLE_IMAGE], timeout=1800)
    shutil.copy(ROOT / "tests" / "compose.pebble.yaml", ctx.project / "compose.pebble.yaml")
    # Copied out of a created container: the real pebble image is FROM scratch, with no `cat` to run.
    container = run(["docker", "create", PEBBLE_IMAGE]).stdout.strip()
    try:
        run(["docker", "cp", f"{container}:/test/certs/pebble.minica.pem", str(ctx.project / "pebble-api-root.pem")])
    finally:
        run(["docker", "rm", container], check=False)
    (ctx.project / "compose.bench-edge.yaml").write_text(BENCH_OVERRIDE)
    wrk_image(ctx)
    build_offsite(ctx)
    env = clean_env(
        APP_IMAGE=IMAGES["app"].split(":")[0],
        STATIC_IMAGE=IMAGES["static"].split(":")[0],
        OFFSITE_IMAGE=IMAGES["offsite"].split(":")[0],
        BACKUP_IMAGE=IMAGES["backup"],
        TAG=TAG,
        HTTP_PORT=str(free_port()),
        HTTPS_PORT=str(free_port()),
        PEBBLE_PORT=str(free_port()),
        EDGE_DOMAIN=ctx.domain,
        COMPOSE_PROJECT_NAME=EDGE_PROJECT,
        LIVE_FILES=":".join(FILES),  # the files for ./live (the Makefile's live targets)
    )
    network = f"{EDGE_PROJECT}_public"  # the edge and nginx's network
    project = ctx.project

    def down() -> None:
        compose(
            ctx, EDGE_PROJECT, project, FILES, env, "down", "-v", "--remove-orphans", "--timeout", "10", check=False
        )

    down()
    ctx.cleanup.add(f"{EDGE_PROJECT} stack", down)
    figures: dict = {}
    try:
        migrate(ctx, EDGE_PROJECT, project, FILES, env)
        compose(ctx, EDGE_PROJECT, project, FILES, env, "up", "-d", "--wait", "--wait-timeout", "300", timeout=400)
        manifest = json.loads(in_image(IMAGES["app"], "cat", MANIFEST))  # the admin's stylesheet, as pages name it
        hashed = "/static/" + manifest["paths"]["admin/css/base.css"]
        edge_base, nginx_base = f"https://{ctx.domain}", "http://nginx:8080"
        # The certificate comes from pebble after the edge starts: wait for the first 200 over HTTPS.
        deadline = time.monotonic() + 180
        while https_status(network, ctx.domain, "/healthz") != "200":
            if time.monotonic() > deadline:
                raise BenchError("the edge served no HTTPS within 180 s (no certificate from pebble?)")
            time.sleep(2)
        edge_headers: dict[str, str] = {}
        nginx_headers = {"Host": ctx.domain, "X-Forwarded-Proto": "https"}
        for name, path in (("static", hashed), ("home", "/")):
            through_edge, through_nginx = [], []
            for number in range(ctx.args.rounds):
                through_edge.append(wrk(ctx, network, edge_base + path, edge_headers, f"edge {name} #{number + 1}"))
                through_nginx.append(
                    wrk(ctx, network, nginx_base + path, nginx_headers, f"nginx alone {name} #{number + 1}")
                )
            figures[f"{name}_edge"] = mean_load(through_edge)
            figures[f"{name}_nginx"] = mean_load(through_nginx)
        figures["release"] = release(ctx, env, network)
    finally:
        with open(ctx.log_file, "a") as handle:
            logs = compose(ctx, EDGE_PROJECT, project, FILES, env, "logs", "--no-color", "--tail", "80", check=False)
            handle.write(logs.stdout)
        down()
        for kind in ("app", "static", "offsite"):
            run(["docker", "rmi", f"{IMAGES[kind].split(':')[0]}:{NEW_TAG}"], check=False)
    ctx.results["edge"] = figures
