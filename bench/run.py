# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "cookiecutter==2.7.1",
#     "matplotlib==3.11.2",
#     "uv==0.13.8",
# ]
# ///
"""Benchmark of the template (issue #6): bakes a project with the default answers, builds and runs it,
and measures every figure beside a deliberately naive baseline built from the same baked project
(bench/baseline/). Prints a table, writes bench/results.json, docs/benchmarks.png and the table in
docs/benchmarks.md.

    uv run bench/run.py            # needs Docker Engine with BuildKit + Compose v2, wrk (apt-get install -y wrk)

The whole run holds an exclusive flock on /tmp/engine.lock (the Docker engine is shared; --no-lock
when the caller already holds it). Everything it creates (containers, volumes, images tagged bench-*,
the images its builds made, its own uv cache mount, temporary directories) is removed at the end, also
on failure; nothing else is touched, so other runs can use the engine meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the template's checkout
BENCH = ROOT / "bench"
DOCS = ROOT / "docs"
ENGINE = Path(os.environ.get("CONTAINER_ENGINE_DIR", ROOT.parent / "shared" / "container-engine"))
MB = 1_000_000  # sizes in MB as Docker prints them (10^6 bytes)
TAG = "run"
IMAGES = {
    "app": f"bench-app:{TAG}",
    "static": f"bench-static:{TAG}",
    "naive": f"bench-naive:{TAG}",
    "ceiling": f"bench-ceiling:{TAG}",
    "app_emptycache": f"bench-app:{TAG}-emptycache",
    "static_emptycache": f"bench-static:{TAG}-emptycache",
}
LIVE_PROJECT = "bench-live"
BASELINE_PROJECT = "bench-baseline"
CEILING_CONTAINER = "bench-ceiling"
EXTRA_PACKAGE = "itsdangerous==2.2.0"  # the dependency change: small, pure Python, not in the lock yet
STACK_TIMEOUT = 300
MANIFEST = "/app/staticfiles/staticfiles.json"  # in the applayer: collectstatic's map to the hashed names


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


def run(
    cmd: list[str],
    *,
    cwd: Path | None = None,
    env: dict | None = None,
    check: bool = True,
    timeout: float = 900,
    quiet: bool = False,
) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise BenchError(
            f"{' '.join(map(str, cmd))} exited {result.returncode}\n--- stdout\n{result.stdout[-3000:]}"
            f"\n--- stderr\n{result.stderr[-3000:]}"
        )
    return result


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without variables that would leak into the baked project's commands."""
    drop = {
        "DJANGO_SETTINGS_MODULE",
        "DATABASE_URL",
        "REDIS_URL",
        "DEBUG",
        "SECRET_KEY",
        "VIRTUAL_ENV",
        "UV_PROJECT_ENVIRONMENT",
        "PYTHONPATH",
        # set by pyenv's shims (uv run from a pyenv shim): would hide the project's Python from uv
        "PYENV_VERSION",
        "PYENV_DIR",
    }
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def uv_binary() -> str:
    for candidate in (Path(sys.prefix) / "bin" / "uv", Path(sys.executable).parent / "uv"):
        if candidate.exists():
            return str(candidate)
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        raise BenchError("uv is not installed: run this script with `uv run bench/run.py`")
    return found


# ---- the engine lock and the clean-up ------------------------------------------------------------


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


# ---- baking --------------------------------------------------------------------------------------


def bake(template: Path, output: Path, *extra: str) -> float:
    started = time.perf_counter()
    run([sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", str(output), str(template), *extra])
    return time.perf_counter() - started


def minimal_template(where: Path) -> Path:
    """The bake-time baseline: cookiecutter's own cost, one rendered file, no hooks."""
    template = where / "minimal-template"
    (template / "{{cookiecutter.project_slug}}").mkdir(parents=True)
    (template / "cookiecutter.json").write_text('{"project_slug": "minimal"}\n')
    (template / "{{cookiecutter.project_slug}}" / "README.md").write_text("# {{ cookiecutter.project_slug }}\n")
    return template


# ---- docker helpers ------------------------------------------------------------------------------

VERTEX = re.compile(r"^#(\d+) (\[.+|exporting to image|resolving provenance.*)$")  # BuildKit's plain progress
VERTEX_END = re.compile(r"^#(\d+) (DONE ([\d.]+)s|CACHED|ERROR)")
UV_SUMMARY = re.compile(r"^#\d+ [\d.]+ (Prepared|Installed) (\d+) packages? in ([\d.]+)(ms|s)")


def timed_build(context: Path, tag: str, *args: str, log_file: Path) -> dict:
    """docker build under BuildKit, timed; the output is kept, with the steps it ran (and their own times, from
    BuildKit's DONE lines) and the steps it took from the cache."""
    cmd = ["docker", "build", "--progress", "plain", *args, "-t", tag, "."]
    started = time.perf_counter()
    names: dict[str, str] = {}
    ran, cached = [], []
    builder, uv = "", {}
    with open(log_file, "a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        process = subprocess.Popen(
            cmd, cwd=context, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean_env()
        )
        try:
            for line in process.stdout:
                out.write(f"{time.perf_counter() - started:7.2f} {line}")
                line = line.rstrip("\n")
                if line.startswith("#0 building with"):
                    builder = line[3:]
                if match := UV_SUMMARY.match(line):  # what uv downloaded (prepared) and installed
                    uv[match.group(1).lower()] = int(match.group(2))
                    uv[f"{match.group(1).lower()}_s"] = float(match.group(3)) / (1000 if match.group(4) == "ms" else 1)
                if match := VERTEX.match(line):
                    names.setdefault(match.group(1), match.group(2)[:100])
                elif (match := VERTEX_END.match(line)) and match.group(1) in names:
                    step = names[match.group(1)]
                    if match.group(2) == "CACHED":
                        cached.append(step)
                    elif match.group(3):
                        ran.append({"step": step, "seconds": float(match.group(3))})
            code = process.wait()
        except BaseException:  # interrupted: stop the build before cleaning up after it
            process.kill()
            process.wait()
            raise
    elapsed = time.perf_counter() - started
    if code != 0:
        raise BenchError(f"{' '.join(cmd)} failed ({code}); see {log_file}")
    if not builder:
        raise BenchError(f"{' '.join(cmd)}: no BuildKit progress in its output (this benchmark needs BuildKit)")
    remember_image(tag)
    instructions = [r for r in ran if r["step"].startswith("[") and not r["step"].startswith("[internal]")]
    return {
        "seconds": elapsed,
        "builder": builder,
        "uv": uv,
        "slowest_steps": sorted(ran, key=lambda r: -r["seconds"])[:6],
        "instructions_run": len(instructions),
        "instructions_cached": len([c for c in cached if not c.startswith("[internal]")]),
    }


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def venv_matches_lock(image: str, requirements: str) -> dict:
    """Whether the image's /opt/venv holds exactly the locked packages (name==version): a build that reused a
    stale cached layer shows up here."""
    from packaging.markers import Marker  # installed with matplotlib

    python = in_image(image, "python", "-c", "import platform; print(platform.python_version())").strip()
    where = {
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": "x86_64",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "python_version": ".".join(python.split(".")[:2]),
        "python_full_version": python,
    }
    expected = set()
    for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)\s*(?:;\s*(.+))?$", requirements, re.M):
        if m.group(3) and not Marker(m.group(3)).evaluate(where):
            continue
        expected.add(f"{normalize(m.group(1))}=={m.group(2)}")
    listing = sh_in_image(image, "ls -d /opt/venv/lib/python*/site-packages/*.dist-info | xargs -n1 basename").split()
    found = set()
    for entry in listing:
        name, _, version = entry.removesuffix(".dist-info").rpartition("-")
        found.add(f"{normalize(name)}=={version}")
    return {"matches": expected == found, "missing": sorted(expected - found), "unexpected": sorted(found - expected)}


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


def container_memory(container: str) -> dict[str, int]:
    """RSS (anonymous memory) and total usage of a container's cgroup, read inside it (cgroup v2 or v1)."""
    out = run(
        [
            "docker",
            "exec",
            container,
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory.stat 2>/dev/null || cat /sys/fs/cgroup/memory/memory.stat; "
            "echo; echo usage $(cat /sys/fs/cgroup/memory.current 2>/dev/null "
            "|| cat /sys/fs/cgroup/memory/memory.usage_in_bytes)",
        ],
        timeout=60,
    ).stdout
    stat = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            stat[parts[0]] = int(parts[1])
    rss = stat.get("anon", stat.get("total_rss", stat.get("rss", 0)))
    return {"rss": rss, "usage": stat.get("usage", 0)}


def docker_stats_mem(container: str) -> str:
    return run(
        ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container], check=False, timeout=60
    ).stdout.strip()


class MemorySampler(threading.Thread):
    """Samples a container's memory every `every` seconds until stopped; keeps the peak."""

    def __init__(self, container: str, every: float = 2.0):
        super().__init__(daemon=True)
        self.container, self.every = container, every
        self.peak = {"rss": 0, "usage": 0}
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(Exception):
                sample = container_memory(self.container)
                self.samples += 1
                for key in self.peak:
                    self.peak[key] = max(self.peak[key], sample[key])
            self.stop.wait(self.every)


# ---- HTTP and wrk --------------------------------------------------------------------------------


def http_get(url: str, headers: dict[str, str], timeout: float = 5) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def wait_for_200(url: str, headers: dict[str, str], started: float, timeout: float = STACK_TIMEOUT) -> float:
    """Seconds from `started` (perf_counter) to the first 200 from url."""
    while time.perf_counter() - started < timeout:
        with contextlib.suppress(OSError, urllib.error.URLError, ConnectionError):
            if http_get(url, headers, timeout=2)[0] == 200:
                return time.perf_counter() - started
        time.sleep(0.2)
    raise BenchError(f"no 200 from {url} within {timeout}s")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(output: str) -> dict:
    def latency(label: str) -> float | None:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
        return float(match.group(1)) * UNITS[match.group(2)] if match else None

    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if not rps or not total:
        raise BenchError(f"could not read wrk's output:\n{output}")
    return {
        "requests_per_s": float(rps.group(1)),
        "requests": int(total.group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
        "non_2xx_3xx": int(non2xx.group(1)) if non2xx else 0,
    }


def mean_load(runs: list[dict]) -> dict:
    """The mean of several wrk runs of the same URL (each run kept under "runs")."""
    if len(runs) == 1:
        return runs[0]
    keys = ("requests_per_s", "p50_ms", "p99_ms")
    merged = {key: statistics.mean(r[key] for r in runs if r[key] is not None) for key in keys}
    merged.update(
        requests=sum(r["requests"] for r in runs),
        socket_errors=sum(r["socket_errors"] for r in runs),
        non_2xx_3xx=sum(r["non_2xx_3xx"] for r in runs),
        runs=runs,
    )
    return merged


class Load:
    def __init__(self, duration: int, connections: int, threads: int, warmup: int):
        self.duration, self.connections, self.threads, self.warmup = duration, connections, threads, warmup

    def __call__(self, url: str, headers: dict[str, str], label: str, log_file: Path) -> dict:
        assert url.startswith("http://127.0.0.1:"), "load only against loopback"
        flags = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
        base = ["wrk", "-t", str(self.threads), "-c", str(self.connections), "--timeout", "5s", "--latency", *flags]
        if self.warmup:
            run([*base, "-d", f"{self.warmup}s", url], timeout=self.warmup + 60)
        out = run([*base, "-d", f"{self.duration}s", url], timeout=self.duration + 60).stdout
        with open(log_file, "a") as handle:
            handle.write(f"\n### wrk {label}: {url}\n{out}")
        result = parse_wrk(out)
        log(
            f"  {label}: {result['requests_per_s']:.0f} req/s, p99 {result['p99_ms']} ms, "
            f"errors {result['socket_errors']}, non-2xx {result['non_2xx_3xx']}"
        )
        return result


# ---- the parts of the baked project --------------------------------------------------------------


def dockerignored(root: Path) -> list[str]:
    path = root / ".dockerignore"
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def context_bytes(root: Path) -> int:
    """Bytes of the files `COPY . .` brings in: the build context after .dockerignore (simple patterns)."""
    patterns = dockerignored(root)

    def ignored(rel: str) -> bool:
        verdict = False
        for pattern in patterns:
            negate = pattern.startswith("!")
            pattern = pattern.lstrip("!").rstrip("/")
            candidates = [pattern, pattern[3:]] if pattern.startswith("**/") else [pattern]
            parts = rel.split("/")
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            hit = any(fnmatch(p, c) for c in candidates for p in prefixes) or (
                pattern.startswith("**/") and any(fnmatch(part, pattern[3:]) for part in parts)
            )
            if hit:
                verdict = not negate
        return verdict

    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and not ignored(f.relative_to(root).as_posix()))


def from_line(dockerfile: Path, stage: str, python_version: str) -> str:
    """The base image a stage starts from, following `FROM <other stage>` down to an image."""
    stages = {
        name.lower(): base
        for base, name in re.findall(r"^FROM\s+(\S+)\s+AS\s+(\S+)\s*$", dockerfile.read_text(), re.M | re.I)
    }
    if stage not in stages:
        raise BenchError(f"no `FROM ... AS {stage}` in {dockerfile}")
    base = stages[stage]
    while base.lower() in stages:  # stage names are case-insensitive, image names are not
        base = stages[base.lower()]
    return base.replace("${PYTHON_VERSION}", python_version)


def compose_image(compose: Path, name: str) -> str:
    match = re.search(rf"^\s*image:\s*({name}:\S+)\s*$", compose.read_text(), re.M)
    if not match:
        raise BenchError(f"no {name} image in {compose}")
    return match.group(1)


def env_file(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#")
    )


# ---- the benchmark -------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, cleanup: Cleanup):
        self.args, self.work, self.cleanup = args, work, cleanup
        self.log_file = work / "bench.log"
        self.load = Load(args.duration, args.connections, args.threads, args.warmup)
        self.results: dict = {"figures": {}}
        self.uv = uv_binary()

    # -- bake
    def bake_times(self) -> None:
        template = minimal_template(self.work)
        ours, minimal = [], []
        for i in range(self.args.bake_runs):
            out = self.work / f"bakes-{i}"
            ours.append(bake(ROOT, out))
            minimal.append(bake(template, out))
            shutil.rmtree(out)
        self.results["figures"]["bake_s"] = {
            "ours": statistics.median(ours),
            "baseline": statistics.median(minimal),
            "ours_runs": ours,
            "baseline_runs": minimal,
        }
        log(f"bake: median {statistics.median(ours):.2f}s (minimal template {statistics.median(minimal):.2f}s)")

    def bake_project(self) -> None:
        bake(ROOT, self.work / "project")
        projects = list((self.work / "project").iterdir())
        self.project = projects[0]
        self.slug = self.project.name
        self.python = (self.project / ".python-version").read_text().strip()
        self.prod_env = env_file(self.project / ".envs" / "prod.env")
        if "REDIS_URL" not in self.prod_env:
            raise BenchError("the default answers should include Redis (bench/baseline/compose.yaml expects it)")
        self.domain = self.prod_env["ALLOWED_HOSTS"].split(",")[0]
        dockerfile = self.project / "Dockerfile"
        self.bases = {
            "app": from_line(dockerfile, "applayer", self.python),
            "static": from_line(dockerfile, "staticlayer", self.python),
            "naive": f"python:{self.python}",
            "postgres": compose_image(self.project / "compose.prod.yaml", "postgres"),
            "redis": compose_image(self.project / "compose.prod.yaml", "redis"),
        }
        self.results["project"] = {"slug": self.slug, "python": self.python, "bases": self.bases, "domain": self.domain}

    def baseline_context(self) -> None:
        """A copy of the baked project with the naive Dockerfile, its compose file and requirements.txt."""
        self.naive = self.work / "baseline" / self.slug
        shutil.copytree(self.project, self.naive)
        for name in ("Dockerfile", "compose.yaml"):
            shutil.copy(BENCH / "baseline" / name, self.naive / name)
        self.export_requirements()

    def locked_requirements(self) -> str:
        return run(
            [self.uv, "export", "--no-dev", "--no-hashes", "--locked", "--no-header", "--no-emit-project", "--quiet"],
            cwd=self.project,
            env=clean_env(),
        ).stdout

    def export_requirements(self) -> None:
        requirements = run(
            [self.uv, "export", "--no-dev", "--no-hashes", "--locked", "--no-header", "--no-emit-project", "--quiet"],
            cwd=self.naive,
            env=clean_env(),
        ).stdout
        (self.naive / "requirements.txt").write_text(requirements)

    # -- engine
    def prepare_engine(self) -> None:
        setup, standins = ENGINE / "setup", ENGINE / "standins"
        if setup.exists() and standins.exists():
            log("container engine: setup and stand-in base images")
            run([str(setup)], timeout=900)
            scan = self.work / "scan"
            shutil.copytree(self.project, scan / self.slug)
            (scan / self.slug / "compose.prod.yaml").unlink()  # names the project's own images
            run([str(standins), "--scan", str(scan)], timeout=1800)
            run([str(standins), self.bases["naive"]], timeout=1800)
        else:
            log(f"no {ENGINE}: using the Docker engine as it is (base images must be present; nothing is pulled)")
        if run(["docker", "info"], check=False, timeout=120).returncode != 0:
            raise BenchError("no Docker engine is reachable")

    # -- builds
    def build_ours(self, label: str, cold: bool = False) -> dict:
        """Both images the way `make build-live` builds them: applayer, then staticlayer. Cold: the applayer
        build uses no cache; the staticlayer build then reuses what that build just made (appbuilder,
        staticbuilder), as on a machine's first `make build-live`, and nothing older (--no-cache-filter)."""
        app_extra = ["--no-cache"] if cold else []
        static_extra = ["--no-cache-filter", "staticlayer"] if cold else []
        app = timed_build(self.project, IMAGES["app"], "--target", "applayer", *app_extra, log_file=self.log_file)
        static = timed_build(
            self.project, IMAGES["static"], "--target", "staticlayer", *static_extra, log_file=self.log_file
        )
        total = app["seconds"] + static["seconds"]
        check = venv_matches_lock(IMAGES["app"], self.locked_requirements())
        if not check["matches"]:
            log(
                f"  WARNING: the applayer's venv does not match uv.lock: missing {check['missing']}, "
                f"unexpected {check['unexpected']}"
            )
        log(
            f"build ours ({label}): {total:.1f}s (applayer {app['seconds']:.1f}s, staticlayer {static['seconds']:.1f}s)"
        )
        return {"seconds": total, "applayer": app, "staticlayer": static, "venv_matches_lock": check}

    def build_naive(self, label: str, no_cache: bool) -> dict:
        extra = ["--no-cache"] if no_cache else []
        result = timed_build(
            self.naive, IMAGES["naive"], "--build-arg", f"PYTHON_VERSION={self.python}", *extra, log_file=self.log_file
        )
        log(f"build baseline ({label}): {result['seconds']:.1f}s")
        return result

    def repeated(self, ours_build, naive_build) -> dict:
        """ours and the baseline, alternating for --build-rounds rounds (the engine is shared: other runs' load
        comes and goes); the medians, every round's time, and the middle round of ours in detail."""
        ours, naive = [], []
        for _ in range(self.args.build_rounds):
            ours.append(ours_build())
            naive.append(naive_build())
        middle = sorted(ours, key=lambda r: r["seconds"])[len(ours) // 2]
        return {
            "ours": statistics.median(r["seconds"] for r in ours),
            "baseline": statistics.median(r["seconds"] for r in naive),
            "ours_runs": [r["seconds"] for r in ours],
            "baseline_runs": [r["seconds"] for r in naive],
            "ours_detail": middle,
            "baseline_detail": sorted(naive, key=lambda r: r["seconds"])[len(naive) // 2],
        }

    def cold_builds(self) -> None:
        """Cold = no build cache and an empty uv cache: BuildKit's --no-cache also gives a cache mount a fresh,
        empty directory (checked: uv must download every locked package). The baseline's pip keeps no cache."""

        def ours() -> dict:
            result = self.build_ours("cold", cold=True)
            uv = result["applayer"]["uv"]
            if not uv.get("prepared") or uv.get("prepared") != uv.get("installed"):
                raise BenchError(f"the cold build's uv did not download every package ({uv}): was its cache empty?")
            return result

        self.results["figures"]["build_cold_s"] = self.repeated(ours, lambda: self.build_naive("cold", no_cache=True))

    def rebuilds(self) -> None:
        figures = self.results["figures"]
        # BuildKit's cache is content-addressed and outlives a run: a change made the same way by an earlier run
        # would come back from its cache. Every change names this run (and round), so each rebuild really builds.
        run_id = f"bench run {os.getpid()}-{time.time_ns()}"
        changes = iter(range(1, 1000))

        def change_code() -> str:
            stamp = f"{run_id} change {next(changes)}"
            for root in (self.project, self.naive):
                views = root / self.slug / "views.py"
                views.write_text(views.read_text() + f"# {stamp}: a one-line change\n")
            return stamp

        def ours() -> dict:
            stamp = change_code()
            result = self.build_ours("after a code change")
            edited = in_image(IMAGES["app"], "tail", "-n", "1", f"/app/{self.slug}/views.py")
            result["change_in_image"] = stamp in edited
            if not result["change_in_image"]:
                raise BenchError("the rebuilt applayer lacks the code change")
            return result

        # The baseline rebuilds after the same change (ours made it in both copies just before).
        figures["rebuild_code_s"] = self.repeated(ours, lambda: self.build_naive("after a code change", no_cache=False))
        stamp = run_id
        # A dependency change: one more pinned package, relocked.
        pyproject = self.project / "pyproject.toml"
        text = pyproject.read_text()
        new = re.sub(r"(dependencies = \[\n)", rf'\1    "{EXTRA_PACKAGE}",\n', text, count=1)
        if new == text:
            raise BenchError("could not add a dependency to pyproject.toml")
        pyproject.write_text(f"{new}# {stamp}\n")
        run([self.uv, "lock", "--quiet"], cwd=self.project, env=clean_env(), timeout=300)
        for name in ("pyproject.toml", "uv.lock"):
            shutil.copy(self.project / name, self.naive / name)
        self.export_requirements()
        ours = self.build_ours("after a dependency change")
        if not ours["applayer"]["uv"].get("installed"):
            raise BenchError("uv sync did not run after the dependency change")
        naive = self.build_naive("after a dependency change", no_cache=False)
        figures["rebuild_deps_s"] = {
            "ours": ours["seconds"],
            "baseline": naive["seconds"],
            "ours_detail": ours,
            "baseline_detail": naive,
            "package": EXTRA_PACKAGE,
        }

    # -- sizes
    def sizes(self) -> None:
        sizes = {name: image_size(IMAGES[name]) for name in ("app", "static", "naive")}
        bases = {name: image_size(self.bases[name]) for name in ("app", "static", "naive")}
        app = key_values(
            sh_in_image(
                IMAGES["app"],
                r"""
            echo venv=$(du -sb /opt/venv | cut -f1)
            echo app=$(du -sb /app | cut -f1)
            echo pyc_venv=$(find /opt/venv -name '*.pyc' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
            echo pycache_app=$(find /app -name __pycache__ | wc -l)
            echo compilers=$(for t in gcc cc c++ g++ make; do command -v $t; done | tr '\n' ' ')
            echo uv=$(command -v uv || true)
            for d in /root/.cache /tmp /var/cache /var/lib/apt/lists; do
                echo "cache:$d=$(du -sb $d 2>/dev/null | cut -f1)"
            done
            echo largest=$(du -s --block-size=1 /opt/venv/lib/python*/site-packages/* | sort -n | tail -5 \
                | awk '{n=split($2,p,"/"); printf "%s:%d,", p[n], $1}')
        """,
            )
        )
        base_caches = key_values(
            sh_in_image(
                self.bases["app"],
                r"""
            for d in /root/.cache /tmp /var/cache /var/lib/apt/lists; do
                echo "cache:$d=$(du -sb $d 2>/dev/null | cut -f1)"
            done
        """,
            )
        )
        static = key_values(
            sh_in_image(
                IMAGES["static"],
                r"""
            echo static=$(du -sb /srv/static | cut -f1)
            echo files=$(find /srv/static -type f | wc -l)
            echo hashed=$(find /srv/static -type f -regextype posix-extended \
                -regex '.*\.[0-9a-f]{12}\.[A-Za-z0-9]+$' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
        """,
            )
        )
        naive = key_values(
            sh_in_image(
                IMAGES["naive"],
                r"""
            site=$(python -c 'import django, os; print(os.path.dirname(os.path.dirname(django.__file__)))')
            echo site=$site
            echo deps=$(du -sb "$site" | cut -f1)
            echo pip_cache=$(du -sb /root/.cache/pip 2>/dev/null | cut -f1)
            echo app=$(du -sb /app | cut -f1)
            echo compilers=$(for t in gcc cc c++ g++ make; do command -v $t; done | tr '\n' ' ')
        """,
            )
        )
        code = context_bytes(self.project) + len(in_image(IMAGES["app"], "cat", MANIFEST).encode())
        app_floor = bases["app"] + int(app["venv"]) + code
        static_floor = bases["static"] + int(static["static"])
        self.results["sizes"] = {
            "images": sizes,
            "bases": bases,
            "app_inside": app,
            "app_base_caches": base_caches,
            "static_inside": static,
            "naive_inside": naive,
            "code_bytes": code,
            "app_floor": app_floor,
            "static_floor": static_floor,
        }
        figures = self.results["figures"]
        figures["size_app_mb"] = {
            "ours": sizes["app"] / MB,
            "baseline": sizes["naive"] / MB,
            "floor": app_floor / MB,
            "over_floor_pct": 100 * (sizes["app"] / app_floor - 1),
        }
        figures["size_static_mb"] = {
            "ours": sizes["static"] / MB,
            "floor": static_floor / MB,
            "over_floor_mb": (sizes["static"] - static_floor) / MB,
            "unhashed_duplicates_mb": (int(static["static"]) - int(static["hashed"])) / MB,
        }
        figures["size_total_mb"] = {"ours": (sizes["app"] + sizes["static"]) / MB, "baseline": sizes["naive"] / MB}
        figures["size_added_mb"] = {
            "ours": (sizes["app"] - bases["app"]) / MB,
            "baseline": (sizes["naive"] - bases["naive"]) / MB,
        }
        log(
            f"sizes: applayer {sizes['app'] / MB:.1f} MB (floor {app_floor / MB:.1f}), staticlayer "
            f"{sizes['static'] / MB:.1f} MB (floor {static_floor / MB:.1f}), baseline {sizes['naive'] / MB:.1f} MB"
        )

    # -- the live stack
    def compose(
        self, project: str, directory: Path, file: str, env: dict, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess:
        return run(
            ["docker", "compose", "-p", project, "-f", file, *args],
            cwd=directory,
            env=env,
            check=check,
            timeout=timeout,
        )

    def migrate(self, project: str, directory: Path, file: str, env: dict) -> None:
        result = self.compose(
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
        self,
        label: str,
        project: str,
        directory: Path,
        file: str,
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
            self.compose(
                project, directory, file, env, "down", "-v", "--remove-orphans", "--timeout", "10", check=False
            )

        down()
        self.cleanup.add(f"{project} stack", down)
        try:
            self.migrate(project, directory, file, env)
            base = f"http://127.0.0.1:{port}"
            started = time.perf_counter()
            up = subprocess.Popen(
                ["docker", "compose", "-p", project, "-f", file, "up", "-d"],
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
            app = self.compose(project, directory, file, env, "ps", "-q", "app").stdout.strip()
            time.sleep(self.args.settle)
            figures["memory_idle"] = container_memory(app)
            figures["docker_stats_idle"] = docker_stats_mem(app)
            # Counted before the load: max_requests recycles workers under load, and each new one boots too.
            logs = self.compose(project, directory, file, env, "logs", "--no-color", "app", check=False).stdout
            figures["gunicorn_workers"] = len(set(re.findall(r"Booting worker with pid: (\d+)", logs)))
            rounds, ceiling = [], []
            for number in range(self.args.rounds if ceiling_url else 1):
                rounds.append(self.load(base + static_path, headers, f"{label} static #{number + 1}", self.log_file))
                if ceiling_url:
                    ceiling.append(self.load(ceiling_url, headers, f"bare nginx static #{number + 1}", self.log_file))
            figures["load_static"] = mean_load(rounds)
            if ceiling:
                figures["ceiling_static"] = mean_load(ceiling)
            sampler = MemorySampler(app)
            sampler.start()
            figures["load_home"] = self.load(base + "/", headers, f"{label} home page", self.log_file)
            sampler.stop.set()
            sampler.join(timeout=120)
            figures["memory_load"] = dict(sampler.peak, samples=sampler.samples)
            figures["docker_stats_after_load"] = docker_stats_mem(app)
            log(
                f"{label}: RSS idle {figures['memory_idle']['rss'] / MB:.0f} MB, under load "
                f"{figures['memory_load']['rss'] / MB:.0f} MB"
            )
        finally:
            with open(self.log_file, "a") as handle:
                handle.write(
                    self.compose(
                        project, directory, file, env, "logs", "--no-color", "--tail", "60", check=False
                    ).stdout
                )
            down()
        return figures

    def live_stacks(self) -> None:
        headers = {"Host": self.domain, "X-Forwarded-Proto": "https"}
        port = free_port()
        env = clean_env(
            APP_IMAGE=IMAGES["app"].split(":")[0],
            STATIC_IMAGE=IMAGES["static"].split(":")[0],
            TAG=TAG,
            NGINX_PORT=f"127.0.0.1:{port}",
        )
        # ours: the hashed name of the admin's base.css, as the pages link it
        manifest = json.loads(in_image(IMAGES["app"], "cat", MANIFEST))
        hashed = manifest["paths"]["admin/css/base.css"]
        ceiling_url = self.start_ceiling(hashed, headers)
        try:
            self.ours = self.stack(
                "ours",
                LIVE_PROJECT,
                self.project,
                "compose.prod.yaml",
                env,
                port,
                f"/static/{hashed}",
                headers,
                ceiling_url=ceiling_url,
            )
        finally:
            run(["docker", "rm", "-f", CEILING_CONTAINER], check=False)
        self.ceiling = {"load_static": self.ours.pop("ceiling_static")}
        port = free_port()
        env = clean_env(
            BASELINE_IMAGE=IMAGES["naive"],
            BASELINE_PORT=f"127.0.0.1:{port}",
            POSTGRES_IMAGE=self.bases["postgres"],
            REDIS_IMAGE=self.bases["redis"],
        )
        # runserver --insecure serves the apps' own files, under their unhashed names.
        self.naive_run = self.stack(
            "baseline", BASELINE_PROJECT, self.naive, "compose.yaml", env, port, "/static/admin/css/base.css", headers
        )
        self.results["runtime"] = {"ours": self.ours, "baseline": self.naive_run, "ceiling": self.ceiling}
        figures = self.results["figures"]
        for key in ("first_200_s",):
            figures[key] = {"ours": self.ours[key], "baseline": self.naive_run[key]}
        for page in ("static", "home"):
            figures[f"{page}_rps"] = {
                "ours": self.ours[f"load_{page}"]["requests_per_s"],
                "baseline": self.naive_run[f"load_{page}"]["requests_per_s"],
            }
            figures[f"{page}_p99_ms"] = {
                "ours": self.ours[f"load_{page}"]["p99_ms"],
                "baseline": self.naive_run[f"load_{page}"]["p99_ms"],
            }
        figures["static_rps"]["ceiling"] = self.ceiling["load_static"]["requests_per_s"]
        figures["static_p99_ms"]["ceiling"] = self.ceiling["load_static"]["p99_ms"]
        for phase in ("idle", "load"):
            figures[f"rss_{phase}_mb"] = {
                "ours": self.ours[f"memory_{phase}"]["rss"] / MB,
                "baseline": self.naive_run[f"memory_{phase}"]["rss"] / MB,
            }
        figures["gunicorn_workers"] = {"ours": self.ours["gunicorn_workers"]}

    def start_ceiling(self, hashed: str, headers: dict[str, str]) -> str:
        """The same file from a bare nginx container: the nginx base image with only that file copied in, its
        default configuration. Returns the file's URL."""
        context = self.work / "ceiling"
        target = context / "file"
        context.mkdir()
        cid = run(["docker", "create", IMAGES["static"]]).stdout.strip()
        try:
            run(["docker", "cp", f"{cid}:/srv/static/{hashed}", str(target)])
        finally:
            run(["docker", "rm", "-f", cid], check=False)
        (context / "Dockerfile").write_text(
            f"FROM {self.bases['static']}\nCOPY file /usr/share/nginx/html/static/{hashed}\n"
        )
        timed_build(context, IMAGES["ceiling"], log_file=self.log_file)
        port = free_port()
        run(["docker", "rm", "-f", CEILING_CONTAINER], check=False)
        self.cleanup.add("ceiling container", lambda: run(["docker", "rm", "-f", CEILING_CONTAINER], check=False))
        run(["docker", "run", "-d", "--name", CEILING_CONTAINER, "-p", f"127.0.0.1:{port}:80", IMAGES["ceiling"]])
        url = f"http://127.0.0.1:{port}/static/{hashed}"
        wait_for_200(url, headers, time.perf_counter(), timeout=60)
        return url

    def machine(self) -> dict:
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
            "builder_detail": self.results["figures"]["build_cold_s"]["ours_detail"]["applayer"]["builder"],
            "buildx": buildx[1] if len(buildx) > 1 else None,
            "wrk": run(["wrk", "-v"], check=False).stdout.splitlines()[0:1],
        }


# ---- report --------------------------------------------------------------------------------------


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def ratio(ours, baseline) -> str:
    if not ours or not baseline:
        return "-"
    return f"{ours / baseline:.2f}x"


def table(results: dict) -> tuple[list[list[str]], list[dict]]:
    f = results["figures"]
    rows, goals = [], []

    def goal(name: str, met: bool, text: str) -> str:
        goals.append({"goal": name, "met": met, "detail": text})
        return f"{text} {'**met**' if met else '**not met**'}"

    def row(label: str, figure: dict, note: str = "", digits: int = 1) -> None:
        """A figure measured for both: ours, baseline, their ratio, and the goal or a note."""
        ours, baseline = figure["ours"], figure["baseline"]
        rows.append([label, fmt(ours, digits), fmt(baseline, digits), ratio(ours, baseline), note])

    app, static = f["size_app_mb"], f["size_static_mb"]
    row(
        "applayer image (MB)",
        app,
        goal(
            "applayer <= floor + 10%",
            app["over_floor_pct"] <= 10,
            f"floor {fmt(app['floor'])}: +{fmt(app['over_floor_pct'])}% (≤ 10%)",
        ),
    )
    rows.append(
        [
            "staticlayer image (MB)",
            fmt(static["ours"]),
            "(in the app image)",
            "-",
            goal(
                "staticlayer <= floor + 1 MB",
                static["over_floor_mb"] <= 1,
                f"floor {fmt(static['floor'])}: +{fmt(static['over_floor_mb'], 2)} MB (≤ +1 MB)",
            ),
        ]
    )
    row("both images (MB)", f["size_total_mb"])
    row("applayer minus its base image (MB)", f["size_added_mb"], "what each Dockerfile adds to python:X(-slim)")
    cold, code, deps = f["build_cold_s"], f["rebuild_code_s"], f["rebuild_deps_s"]
    rounds = len(code.get("ours_runs", [None]))
    row(
        "cold build of both images (s)",
        cold,
        f"no build cache, empty uv cache: a machine's first build; median of {rounds}",
    )
    row(
        "rebuild of both after a one-line .py change (s)",
        code,
        goal(
            "code rebuild <= 10% of cold",
            code["ours"] <= 0.1 * cold["ours"],
            f"{fmt(code['ours'], 2)} s = {100 * code['ours'] / cold['ours']:.1f}% of cold"
            f" {fmt(cold['ours'])} s (≤ 10%); median of {rounds}",
        ),
        digits=2,
    )
    installed = deps["ours_detail"]["venv_matches_lock"]
    row(
        f"rebuild after adding {deps['package']} (s)",
        deps,
        f"{100 * deps['ours'] / cold['ours']:.0f}% of cold"
        + (
            ""
            if installed["matches"]
            else goal(
                "dependency rebuild installs the new package",
                False,
                "; STALE: the image lacks "
                + ", ".join(installed["missing"])
                + " (the uv sync layer came from the cache)",
            )
        ),
    )
    row("`up -d` to first 200 from /healthz (s)", f["first_200_s"], "ours through nginx")
    srps, sp99 = f["static_rps"], f["static_p99_ms"]
    row(
        "static file, throughput (req/s)",
        srps,
        goal(
            "static >= 0.9x bare nginx",
            srps["ours"] >= 0.9 * srps["ceiling"],
            f"bare nginx {fmt(srps['ceiling'], 0)}: {srps['ours'] / srps['ceiling']:.2f}x (≥ 0.9x)",
        ),
        digits=0,
    )
    row("static file, p99 latency (ms)", sp99, f"bare nginx {fmt(sp99['ceiling'], 2)}", digits=2)
    row("home page, throughput (req/s)", f["home_rps"], "2 DB queries + template", digits=0)
    row("home page, p99 latency (ms)", f["home_p99_ms"])
    workers = f["gunicorn_workers"]["ours"]
    row("app RSS at idle (MB)", f["rss_idle_mb"], f"{workers} gunicorn workers + master vs runserver")
    row("app RSS under the home-page load (MB, peak)", f["rss_load_mb"])
    row("bake, median of runs (s)", f["bake_s"], "baseline: a one-file template", digits=2)
    return rows, goals


def markdown(rows: list[list[str]]) -> str:
    head = ["figure", "ours", "baseline", "ours ÷ baseline", "goal / note"]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(["---"] * len(head)) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def plain(rows: list[list[str]]) -> str:
    head = ["figure", "ours", "baseline", "ratio", "goal / note"]
    cells = [head] + [[c.replace("**", "").replace("`", "") for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in cells)


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = results["figures"]
    s = results["sizes"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    ours_c, base_c, floor_c, ceil_c = "#2b7bba", "#d9822b", "#9aa5b1", "#4caf50"

    ax = axes[0][0]
    labels = ["applayer", "app floor", "staticlayer", "static floor", "baseline"]
    values = [s["images"]["app"], s["app_floor"], s["images"]["static"], s["static_floor"], s["images"]["naive"]]
    ax.bar(labels, [v / MB for v in values], color=[ours_c, floor_c, ours_c, floor_c, base_c])
    ax.set_title("Image size (MB)")
    ax.tick_params(axis="x", labelrotation=20)

    def pair(ax, keys, names, title, digits=0, ceiling=None):
        xs = range(len(keys))
        ours = [f[k]["ours"] for k in keys]
        base = [f[k]["baseline"] for k in keys]
        ax.bar([x - 0.2 for x in xs], ours, 0.4, label="ours", color=ours_c)
        ax.bar([x + 0.2 for x in xs], base, 0.4, label="baseline", color=base_c)
        if ceiling:
            ax.bar([ceiling[0] + 0.6], [ceiling[1]], 0.4, label="bare nginx", color=ceil_c)
        for x, v in zip(xs, ours, strict=True):
            ax.annotate(f"{v:.{digits}f}", (x - 0.2, v), ha="center", va="bottom", fontsize=8)
        for x, v in zip(xs, base, strict=True):
            ax.annotate(f"{v:.{digits}f}", (x + 0.2, v), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(list(xs), names)
        ax.set_title(title)
        ax.legend(fontsize=8)

    pair(
        axes[0][1],
        ["build_cold_s", "rebuild_code_s", "rebuild_deps_s"],
        ["cold", "code\nchange", "dependency\nchange"],
        "Build time (s)",
    )
    pair(axes[0][2], ["first_200_s"], ["up -d to first 200"], "Start-up (s)", digits=1)
    pair(
        axes[1][0],
        ["static_rps", "home_rps"],
        ["static file", "home page"],
        "Throughput (req/s)",
        ceiling=(0, f["static_rps"]["ceiling"]),
    )
    pair(
        axes[1][1],
        ["static_p99_ms", "home_p99_ms"],
        ["static file", "home page"],
        "p99 latency (ms)",
        digits=1,
        ceiling=(0, f["static_p99_ms"]["ceiling"]),
    )
    pair(axes[1][2], ["rss_idle_mb", "rss_load_mb"], ["idle", "under load"], "App container RSS (MB)")
    m = results["machine"]
    fig.suptitle(
        f"Template vs naive baseline: {m['cpus']} cores, {m['memory_gib']:.0f} GiB, {m['engine']} "
        f"{m['engine_version']}, {m['builder']}, stand-in base images ({results['date']})",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def update_docs(results: dict, table_md: str) -> None:
    doc = DOCS / "benchmarks.md"
    if not doc.exists():
        return
    m, load = results["machine"], results["load"]
    block = (
        f"<!-- bench:table:start (written by bench/run.py) -->\n"
        f"Run of {results['date']}: {m['cpus']} cores ({m['cpu_model'] or 'unknown CPU'}), {m['memory_gib']} GiB, "
        f"kernel {m['kernel']}, {m['engine']} {m['engine_version']} ({m['builder']}), stand-in base images; "
        f"wrk {load['threads']} threads, {load['connections']} connections, {load['duration_s']} s per figure "
        f"after a {load['warmup_s']} s warm-up. Whole run: {results['run_seconds'] / 60:.1f} min; load average "
        f"{results['load_average']['start']:.1f} at its start, {results['load_average']['end']:.1f} at its end (the "
        f"engine is shared with other runs).\n\n"
        f"{table_md}\n"
        f"<!-- bench:table:end -->"
    )
    text = doc.read_text()
    new = re.sub(r"<!-- bench:table:start.*?<!-- bench:table:end -->", lambda _: block, text, flags=re.S)
    doc.write_text(new)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per figure (default 10)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load before each figure")
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternating rounds of the static file: ours, bare nginx (default 2)"
    )
    parser.add_argument("--settle", type=float, default=5, help="seconds after start before the idle memory")
    parser.add_argument("--bake-runs", type=int, default=5)
    parser.add_argument(
        "--build-rounds", type=int, default=3, help="cold builds and code-change rebuilds, each (default 3; medians)"
    )
    parser.add_argument("--lock", default="/tmp/engine.lock", help="flock held for the whole run")
    parser.add_argument(
        "--no-lock", action="store_const", const="", dest="lock", help="the caller already holds the engine lock"
    )
    parser.add_argument("--results", type=Path, default=BENCH / "results.json")
    parser.add_argument("--keep-log", type=Path, help="copy the build and load log here before clean-up")
    args = parser.parse_args()

    missing = [tool for tool in ("docker", "wrk") if not shutil.which(tool)]
    if "wrk" in missing:
        print(
            "bench: wrk is missing: install it with `apt-get install -y wrk` (Debian package wrk), then run again",
            file=sys.stderr,
        )
        return 2
    if missing:
        print("bench: docker is missing: a Docker CLI with Compose v2 is needed", file=sys.stderr)
        return 2

    def terminate(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    started = time.perf_counter()
    cleanup = Cleanup()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    cleanup.add("temporary directory", lambda: shutil.rmtree(work, ignore_errors=True))
    log(f"working in {work} (log: {work / 'bench.log'}, removed at the end)")
    try:
        bench = Bench(args, work, cleanup)
        bench.bake_times()  # no engine needed: before taking the lock
        bench.bake_project()
        bench.baseline_context()
        with engine_lock(args.lock):
            try:
                bench.prepare_engine()
                bench.results["load_average"] = {"start": os.getloadavg()[0]}
                cleanup.add("images", remove_created_images)
                bench.cold_builds()
                bench.sizes()
                bench.live_stacks()
                bench.rebuilds()
                bench.results["machine"] = bench.machine()
                bench.results["load_average"]["end"] = os.getloadavg()[0]
            except BaseException:
                log_text = (work / "bench.log").read_text()[-6000:] if (work / "bench.log").exists() else ""
                print(log_text, file=sys.stderr)
                raise
            finally:
                if args.keep_log and (work / "bench.log").exists():
                    shutil.copy(work / "bench.log", args.keep_log)
                log("cleaning up")
                cleanup.run()
    finally:
        cleanup.run()

    results = bench.results
    results["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    results["load"] = {
        "tool": "wrk",
        "threads": args.threads,
        "connections": args.connections,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "target": "127.0.0.1 only",
    }
    git = ["git", "-C", str(ROOT)]
    results["template"] = {
        "commit": run([*git, "rev-parse", "--short", "HEAD"], check=False).stdout.strip(),
        "uncommitted_changes": bool(run([*git, "status", "--porcelain"], check=False).stdout.strip()),
    }
    results["run_seconds"] = time.perf_counter() - started - LOCK_WAIT["seconds"]
    results["lock_wait_seconds"] = LOCK_WAIT["seconds"]
    rows, goals = table(results)
    results["goals"] = goals
    results["table"] = rows
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    DOCS.mkdir(exist_ok=True)
    chart(results, DOCS / "benchmarks.png")
    update_docs(results, markdown(rows))
    print(plain(rows))
    print(
        f"\nwrote {args.results}, {DOCS / 'benchmarks.png'} and the table in {DOCS / 'benchmarks.md'} "
        f"({results['run_seconds'] / 60:.1f} min)"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(1)
