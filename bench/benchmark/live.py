"""The live stacks: ours (compose.prod.yaml, through nginx) and the baseline's, started, timed to the first
200, loaded, and measured; and the bare nginx that is the static files' ceiling."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .backups import build_offsite
from .builds import timed_build
from .common import (
    BASELINE_PROJECT,
    CEILING_CONTAINER,
    IMAGES,
    LIVE_PROJECT,
    MANIFEST,
    MB,
    STACK_TIMEOUT,
    TAG,
    BenchError,
    clean_env,
    free_port,
    log,
    run,
)
from .engine import in_image
from .load import MemorySampler, container_memory, docker_stats_mem, http_get, mean_load, wait_for_200

if TYPE_CHECKING:
    from .state import Run


def file_flags(file: str | tuple[str, ...]) -> list[str]:
    """-f for a compose file, or for each of a file and its overrides."""
    return [flag for name in ((file,) if isinstance(file, str) else file) for flag in ("-f", name)]


def compose(
    ctx: Run,
    project: str,
    directory: Path,
    file: str | tuple[str, ...],
    env: dict,
    *args: str,
    check: bool = True,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    return run(
        ["docker", "compose", "-p", project, *file_flags(file), *args],
        cwd=directory,
        env=env,
        check=check,
        timeout=timeout,
    )


def migrate(ctx: Run, project: str, directory: Path, file: str | tuple[str, ...], env: dict) -> None:
    result = compose(
        ctx,
        project,
        directory,
        file,
        env,
        "run",
        "--rm",
        "app",
        "python",
        "manage.py",
        "migrate",
        "--noinput",
        check=False,
        timeout=STACK_TIMEOUT + 60,
    )
    if result.returncode != 0:
        raise BenchError(f"migrate in {project} exited {result.returncode}:\n{result.stderr[-3000:]}")


def stack(
    ctx: Run,
    label: str,
    project: str,
    directory: Path,
    file: str | tuple[str, ...],
    env: dict,
    port: int,
    static_path: str,
    headers: dict[str, str],
    ceiling_url: str | None = None,
) -> dict:
    """migrate, then time `up -d` to the first 200 from /healthz; memory; load on a static file and /.
    With ceiling_url (the bare nginx, running beside the stack so both see the same background work), the
    static file is loaded in alternating rounds: stack, bare nginx, stack, bare nginx..."""
    figures: dict = {}

    def down() -> None:
        compose(ctx, project, directory, file, env, "down", "-v", "--remove-orphans", "--timeout", "10", check=False)

    down()
    ctx.cleanup.add(f"{project} stack", down)
    try:
        migrate(ctx, project, directory, file, env)
        base = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        up = subprocess.Popen(
            ["docker", "compose", "-p", project, *file_flags(file), "up", "-d"],
            cwd=directory,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            figures["first_200_s"] = wait_for_200(base + "/healthz", headers, started)
        finally:
            up_output = up.communicate(timeout=STACK_TIMEOUT)[0]
        figures["up_returned_s"] = time.perf_counter() - started
        if up.returncode != 0:
            raise BenchError(f"compose up failed:\n{up_output}")
        log(f"{label}: first 200 from /healthz {figures['first_200_s']:.1f}s after `up -d`")
        status, page = http_get(base + "/", headers, timeout=30)
        if status != 200 or "It works" not in page:
            raise BenchError(f"{label}: home page answered {status}")
        status, _ = http_get(base + static_path, headers)
        if status != 200:
            raise BenchError(f"{label}: {static_path} answered {status}")
        figures["static_path"] = static_path
        app = compose(ctx, project, directory, file, env, "ps", "-q", "app").stdout.strip()
        time.sleep(ctx.args.settle)
        figures["memory_idle"] = container_memory(app)
        figures["docker_stats_idle"] = docker_stats_mem(app)
        # Counted before the load: max_requests recycles workers under load, and each new one boots too.
        logs = compose(ctx, project, directory, file, env, "logs", "--no-color", "app", check=False).stdout
        figures["gunicorn_workers"] = len(set(re.findall(r"Booting worker with pid: (\d+)", logs)))
        rounds, ceiling = [], []
        for number in range(ctx.args.rounds if ceiling_url else 1):
            rounds.append(ctx.load(base + static_path, headers, f"{label} static #{number + 1}", ctx.log_file))
            if ceiling_url:
                ceiling.append(ctx.load(ceiling_url, headers, f"bare nginx static #{number + 1}", ctx.log_file))
        figures["load_static"] = mean_load(rounds)
        if ceiling:
            figures["ceiling_static"] = mean_load(ceiling)
        sampler = MemorySampler(app)
        sampler.start()
        figures["load_home"] = ctx.load(base + "/", headers, f"{label} home page", ctx.log_file)
        sampler.stop.set()
        sampler.join(timeout=120)
        figures["memory_load"] = dict(sampler.peak, samples=sampler.samples)
        figures["docker_stats_after_load"] = docker_stats_mem(app)
        log(
            f"{label}: RSS idle {figures['memory_idle']['rss'] / MB:.0f} MB, under load "
            f"{figures['memory_load']['rss'] / MB:.0f} MB"
        )
    finally:
        with open(ctx.log_file, "a") as handle:
            handle.write(
                compose(ctx, project, directory, file, env, "logs", "--no-color", "--tail", "60", check=False).stdout
            )
        down()
    return figures


def live_stacks(ctx: Run) -> None:
    headers = {"Host": ctx.domain, "X-Forwarded-Proto": "https"}
    build_offsite(ctx)
    port = free_port()
    env = clean_env(
        APP_IMAGE=IMAGES["app"].split(":")[0],
        STATIC_IMAGE=IMAGES["static"].split(":")[0],
        OFFSITE_IMAGE=IMAGES["offsite"].split(":")[0],
        BACKUP_IMAGE=IMAGES["backup"],
        TAG=TAG,
        # nginx alone, as behind a TLS-terminating proxy that the load generator stands in for (its requests
        # come from the network's gateway, a private address).
        LIVE_BIND="127.0.0.1",
        LIVE_PORT=str(port),
        TRUSTED_PROXIES="10.0.0.0/8,172.16.0.0/12,192.168.0.0/16",
    )
    # ours: the hashed name of the admin's base.css, as the pages link it
    manifest = json.loads(in_image(IMAGES["app"], "cat", MANIFEST))
    hashed = manifest["paths"]["admin/css/base.css"]
    ceiling_url = start_ceiling(ctx, hashed, headers)
    try:
        ctx.ours = stack(
            ctx,
            "ours",
            LIVE_PROJECT,
            ctx.project,
            ("compose.prod.yaml", "compose.behind-proxy.yaml"),
            env,
            port,
            f"/static/{hashed}",
            headers,
            ceiling_url=ceiling_url,
        )
    finally:
        run(["docker", "rm", "-f", CEILING_CONTAINER], check=False)
    ctx.ceiling = {"load_static": ctx.ours.pop("ceiling_static")}
    port = free_port()
    env = clean_env(
        BASELINE_IMAGE=IMAGES["naive"],
        BASELINE_PORT=f"127.0.0.1:{port}",
        POSTGRES_IMAGE=ctx.bases["postgres"],
        POSTGRES_DATA=ctx.postgres_data,
        STORE=ctx.store,
        STORE_IMAGE=ctx.bases["store"],
    )
    # runserver --insecure serves the apps' own files, under their unhashed names.
    ctx.naive_run = stack(
        ctx, "baseline", BASELINE_PROJECT, ctx.naive, "compose.yaml", env, port, "/static/admin/css/base.css", headers
    )
    ctx.results["runtime"] = {"ours": ctx.ours, "baseline": ctx.naive_run, "ceiling": ctx.ceiling}
    figures = ctx.results["figures"]
    for key in ("first_200_s",):
        figures[key] = {"ours": ctx.ours[key], "baseline": ctx.naive_run[key]}
    for page in ("static", "home"):
        figures[f"{page}_rps"] = {
            "ours": ctx.ours[f"load_{page}"]["requests_per_s"],
            "baseline": ctx.naive_run[f"load_{page}"]["requests_per_s"],
        }
        figures[f"{page}_p99_ms"] = {
            "ours": ctx.ours[f"load_{page}"]["p99_ms"],
            "baseline": ctx.naive_run[f"load_{page}"]["p99_ms"],
        }
    figures["static_rps"]["ceiling"] = ctx.ceiling["load_static"]["requests_per_s"]
    figures["static_p99_ms"]["ceiling"] = ctx.ceiling["load_static"]["p99_ms"]
    for phase in ("idle", "load"):
        figures[f"rss_{phase}_mb"] = {
            "ours": ctx.ours[f"memory_{phase}"]["rss"] / MB,
            "baseline": ctx.naive_run[f"memory_{phase}"]["rss"] / MB,
        }
    figures["gunicorn_workers"] = {"ours": ctx.ours["gunicorn_workers"]}


def start_ceiling(ctx: Run, hashed: str, headers: dict[str, str]) -> str:
    """The same file from a bare nginx container: the nginx base image with only that file copied in, its
    default configuration. Returns the file's URL."""
    context = ctx.work / "ceiling"
    target = context / "file"
    context.mkdir()
    cid = run(["docker", "create", IMAGES["static"]]).stdout.strip()
    try:
        run(["docker", "cp", f"{cid}:/srv/static/{hashed}", str(target)])
    finally:
        run(["docker", "rm", "-f", cid], check=False)
    (context / "Dockerfile").write_text(
        f"FROM {ctx.bases['static']}\nCOPY file /usr/share/nginx/html/static/{hashed}\n"
    )
    timed_build(context, IMAGES["ceiling"], log_file=ctx.log_file)
    port = free_port()
    run(["docker", "rm", "-f", CEILING_CONTAINER], check=False)
    ctx.cleanup.add("ceiling container", lambda: run(["docker", "rm", "-f", CEILING_CONTAINER], check=False))
    run(["docker", "run", "-d", "--name", CEILING_CONTAINER, "-p", f"127.0.0.1:{port}:80", IMAGES["ceiling"]])
    url = f"http://127.0.0.1:{port}/static/{hashed}"
    wait_for_200(url, headers, time.perf_counter(), timeout=60)
    return url
