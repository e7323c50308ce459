"""The API option (issue 24): requests per second of a list call (a page of 20 documents, with a session token)
through nginx, beside the home page, for each framework. Each framework's project is baked with api=<it> (the other
answers at their defaults), built and deployed with its own Makefile (`make build-live`, `make deploy`, behind a
proxy: the load generator stands in for it), given a user and 40 documents, and loaded; then removed."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import TYPE_CHECKING

from .common import ROOT, BenchError, clean_env, free_port, log, run
from .project import bake, env_file

if TYPE_CHECKING:
    from .state import Run

FRAMEWORKS = ("drf", "ninja")
TAG = "bench-api"
PASSWORD = "bench-Password-1"
LIVE = ["-f", "compose.prod.yaml", "-f", "compose.behind-proxy.yaml"]
SEED = """
import os
from allauth.account.models import EmailAddress
from django.core.files.base import ContentFile
from users.models import User
from {slug}.models import Document
user = User.objects.create_user(email="bench@example.com", password=os.environ["BENCH_PASSWORD"])
# Verified, as after a sign-up: the live site's login waits for an unverified address (and mails it a link).
EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
for number in range(40):
    Document.objects.create(title=f"document {{number}}", file=ContentFile(b"x", name=f"d{{number}}.txt"))
"""


def api_stacks(ctx: Run) -> None:
    ctx.results["api"] = {
        "what": "a page of 20 of 40 documents with a session token (X-Session-Token), beside the home page"
    }
    for framework in FRAMEWORKS:
        ctx.results["api"][framework] = framework_stack(ctx, framework)


def framework_stack(ctx: Run, framework: str) -> dict:
    out = ctx.work / f"api-{framework}"
    bake(ROOT, out, f"project_name=Bench Api {framework}", f"api={framework}")
    path = out / f"bench_api_{framework}"
    slug = path.name
    prod = path / ".envs/prod.env"
    # The load is one user's: far above its throttle, which would answer 429s (the figure is the framework's).
    prod.write_text(prod.read_text() + "API_THROTTLE_USER=100000000/min\nAPI_THROTTLE_ANON=100000000/min\n")
    domain = env_file(prod)["ALLOWED_HOSTS"].split(",")[0]
    major = env_file(path / "postgres.env")["POSTGRES_MAJOR"]
    port = free_port()
    env = clean_env(
        TAG=TAG,
        BEHIND_PROXY="1",
        LIVE_BIND="127.0.0.1",
        LIVE_PORT=str(port),
        TRUSTED_PROXIES="10.0.0.0/8,172.16.0.0/12,192.168.0.0/16",
    )

    def down() -> None:
        run(
            ["docker", "compose", *LIVE, "--profile", "edge", "down", "-v", "--remove-orphans", "--timeout", "10"],
            cwd=path,
            env=env,
            check=False,
            timeout=300,
        )
        # make build-live's four: the app, static and off-site images at the tag, the backup image of PG_MAJOR.
        images = [f"{slug}-{image}:{TAG}" for image in ("app", "static", "offsite")] + [f"{slug}-backup:pg{major}"]
        run(["docker", "rmi", "-f", *images], check=False)

    ctx.cleanup.add(f"api {framework} stack", down)
    try:
        started = time.perf_counter()
        run(["make", "build-live"], cwd=path, env=env, timeout=1800)
        run(["make", "deploy"], cwd=path, env=env, timeout=900)
        log(f"api {framework}: built and deployed in {time.perf_counter() - started:.0f}s")
        seed = ["docker", "compose", *LIVE, "run", "--rm", "-e", f"BENCH_PASSWORD={PASSWORD}", "app"]
        run([*seed, "python", "manage.py", "shell", "-c", SEED.format(slug=slug)], cwd=path, env=env, timeout=300)
        base = f"http://127.0.0.1:{port}"
        headers = {"Host": domain, "X-Forwarded-Proto": "https"}
        token = session_token(base, headers)
        listing = dict(headers, **{"X-Session-Token": token})
        page = json.loads(get(base + "/api/documents/", listing))
        items = page.get("results", page.get("items"))
        if page.get("count") != 40 or len(items) != 20:
            raise BenchError(f"api {framework}: the list answered {str(page)[:300]}")
        figures = {
            "home": ctx.load(base + "/", headers, f"api {framework} home page", ctx.log_file),
            "list": ctx.load(base + "/api/documents/", listing, f"api {framework} list of 20", ctx.log_file),
        }
        for name, result in figures.items():
            if result["non_2xx_3xx"] or result["socket_errors"]:
                raise BenchError(f"api {framework} {name}: {result}")
        return figures
    finally:
        with open(ctx.log_file, "a") as handle:
            logs = ["docker", "compose", *LIVE, "logs", "--no-color", "--tail", "60", "app"]
            handle.write(run(logs, cwd=path, env=env, check=False).stdout)
        down()


def get(url: str, headers: dict[str, str]) -> str:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
        return response.read().decode()


def session_token(base: str, headers: dict[str, str]) -> str:
    """A token from allauth's headless login, as a script gets one."""
    body = json.dumps({"email": "bench@example.com", "password": PASSWORD}).encode()
    request = urllib.request.Request(
        base + "/_allauth/app/v1/auth/login", data=body, headers=dict(headers, **{"Content-Type": "application/json"})
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["meta"]["session_token"]
