"""The Docker engine: the lock other runs respect, the clean-up, the images this run built, throwaway
containers to read images with, the stand-in base images, and naming the engine in the report."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import shutil
import time
from typing import TYPE_CHECKING

from .common import ENGINE, IMAGES, BenchError, log, run

if TYPE_CHECKING:
    from .state import Run

LOCK_WAIT = {"seconds": 0.0}


@contextlib.contextmanager
def engine_lock(path: str | None):
    if not path:
        yield
        return
    asked = time.perf_counter()
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for {path} (another run is using the Docker engine)")
            fcntl.flock(handle, fcntl.LOCK_EX)
        LOCK_WAIT["seconds"] = time.perf_counter() - asked
        log(f"holding {path}")
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Cleanup:
    """Undo steps, run in reverse order at the end whatever happened."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, object]] = []

    def add(self, what: str, action) -> None:
        self.steps.append((what, action))

    def run(self) -> None:
        while self.steps:
            what, action = self.steps.pop()
            try:
                action()
            except Exception as exc:  # keep cleaning up
                log(f"clean-up of {what} failed: {exc}")


CREATED_IMAGES: set[str] = set()  # ids of every image this run built (re-tagging leaves the old ones untagged)


def remember_image(tag: str) -> None:
    CREATED_IMAGES.add(run(["docker", "image", "inspect", tag, "--format", "{{.Id}}"]).stdout.strip())


def remove_created_images() -> None:
    """The bench-* tags, then the images this run's builds made. Only those: other runs (the e2e suite) use
    the same engine at the same time without the lock, so images that merely appeared meanwhile stay."""
    run(["docker", "rmi", "-f", *IMAGES.values()], check=False)
    for image in sorted(CREATED_IMAGES):  # one by one: a failure stops no other
        run(["docker", "rmi", image], check=False)


def image_size(ref: str) -> int:
    return int(run(["docker", "image", "inspect", ref, "--format", "{{.Size}}"]).stdout.strip())


def in_image(image: str, program: str, *args: str, user: str = "0") -> str:
    """The output of one program run in a throwaway container of the image, without network."""
    return run(
        ["docker", "run", "--rm", "--network", "none", "--user", user, "--entrypoint", program, image, *args]
    ).stdout


def sh_in_image(image: str, script: str, user: str = "0") -> str:
    return in_image(image, "sh", "-c", script, user=user)


def key_values(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def prepare_engine(ctx: Run) -> None:
    setup, standins = ENGINE / "setup", ENGINE / "standins"
    if setup.exists() and standins.exists():
        log("container engine: setup and stand-in base images")
        run([str(setup)], timeout=900)
        scan = ctx.work / "scan"
        shutil.copytree(ctx.project, scan / ctx.slug)
        (scan / ctx.slug / "compose.prod.yaml").unlink()  # names the project's own images
        # The worker and beat run the development image the app service builds (`${COMPOSE_PROJECT_NAME}-app`): not
        # a base image (.ci/run leaves it out of its scan the same way).
        compose = scan / ctx.slug / "compose.yaml"
        lines = compose.read_text().splitlines(keepends=True)
        compose.write_text("".join(line for line in lines if line.strip() != "image: ${COMPOSE_PROJECT_NAME}-app"))
        run([str(standins), "--scan", str(scan)], timeout=1800)
        run([str(standins), ctx.bases["naive"]], timeout=1800)
    else:
        log(f"no {ENGINE}: using the Docker engine as it is (base images must be present; nothing is pulled)")
    if run(["docker", "info"], check=False, timeout=120).returncode != 0:
        raise BenchError("no Docker engine is reachable")


def machine(ctx: Run) -> dict:
    """The machine and the engine, named from what `docker version` and the builds report."""
    info = json.loads(run(["docker", "version", "--format", "{{json .Server}}"], check=False).stdout or "{}")
    components = {c.get("Name"): c.get("Version") for c in info.get("Components", [])}
    # Docker's own builds name the platform ("Docker Engine - Community"); distribution builds leave it
    # empty and call the component "Engine". Podman calls it "Podman Engine".
    platform_name = (info.get("Platform") or {}).get("Name") or ""
    engine = platform_name or ("Docker Engine" if "Engine" in components else next(iter(components), "?"))
    version = info.get("Version") or ""
    buildx = run(["docker", "buildx", "version"], check=False).stdout.split()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next(
            (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), ""
        )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(memory / 2**30, 1),
        "kernel": platform.release(),
        "engine": engine,
        "engine_version": version.split("+")[0],  # 28.5.2+dfsg4: the distribution's suffix goes to the JSON
        "engine_version_full": version,
        "engine_components": components,
        # timed_build refuses output without BuildKit's progress, so every build here was BuildKit's.
        "builder": "BuildKit",
        "builder_detail": ctx.results["figures"]["build_cold_s"]["ours_detail"]["applayer"]["builder"],
        "buildx": buildx[1] if len(buildx) > 1 else None,
        "wrk": run(["wrk", "-v"], check=False).stdout.splitlines()[0:1] if shutil.which("wrk") else None,
    }
