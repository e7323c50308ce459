"""The baked project and the baseline's copy of it: baking (and its timing), what the Dockerfile and the
compose files name, the build context after .dockerignore, the requirements the baseline installs."""

from __future__ import annotations

import importlib.util
import re
import shutil
import statistics
import sys
import time
from fnmatch import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING

from .common import BENCH, ROOT, BenchError, clean_env, log, run

if TYPE_CHECKING:
    from .state import Run


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


def service_image(compose: Path, service: str) -> str:
    """The image of a compose service that has one (a top-level service of two-space indented YAML)."""
    match = re.search(
        rf"^  {re.escape(service)}:\n(?:(?:    .*)?\n)*?    image:\s*(\S+)\s*$", compose.read_text(), re.M
    )
    if not match:
        raise BenchError(f"no image for the service {service} in {compose}")
    return match.group(1)


def postgres_data(project: Path) -> str:
    """Where the database service mounts its volume (it moved with PostgreSQL 18): postgres.env says."""
    return env_file(project / "postgres.env")["POSTGRES_VOLUME_AT"]


def env_file(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#")
    )


def bake_times(ctx: Run) -> None:
    template = minimal_template(ctx.work)
    ours, minimal = [], []
    for i in range(ctx.args.bake_runs):
        out = ctx.work / f"bakes-{i}"
        ours.append(bake(ROOT, out))
        minimal.append(bake(template, out))
        shutil.rmtree(out)
    ctx.results["figures"]["bake_s"] = {
        "ours": statistics.median(ours),
        "baseline": statistics.median(minimal),
        "ours_runs": ours,
        "baseline_runs": minimal,
    }
    log(f"bake: median {statistics.median(ours):.2f}s (minimal template {statistics.median(minimal):.2f}s)")


def bake_project(ctx: Run) -> None:
    bake(ROOT, ctx.work / "project")
    projects = list((ctx.work / "project").iterdir())
    ctx.project = projects[0]
    ctx.slug = ctx.project.name
    ctx.python = (ctx.project / ".python-version").read_text().strip()
    ctx.prod_env = env_file(ctx.project / ".envs" / "prod.env")
    if "REDIS_URL" not in ctx.prod_env:
        raise BenchError("the default answers should include a key-value store (bench/baseline/compose.yaml has one)")
    # The store's service is named after it (valkey, redis): the host in REDIS_URL.
    ctx.store = re.search(r"@([\w-]+):\d+/", ctx.prod_env["REDIS_URL"]).group(1)
    ctx.domain = ctx.prod_env["ALLOWED_HOSTS"].split(",")[0]
    dockerfile = ctx.project / "Dockerfile"
    ctx.bases = {
        "app": from_line(dockerfile, "applayer", ctx.python),
        "static": from_line(dockerfile, "staticlayer", ctx.python),
        "naive": f"python:{ctx.python}",
        "postgres": f"postgres:{env_file(ctx.project / 'postgres.env')['POSTGRES_MAJOR']}",
        "store": service_image(ctx.project / "compose.prod.yaml", ctx.store),
    }
    ctx.postgres_data = postgres_data(ctx.project)
    ctx.results["project"] = {
        "slug": ctx.slug,
        "python": ctx.python,
        "bases": ctx.bases,
        "domain": ctx.domain,
        "store": ctx.store,
    }


def baseline_context(ctx: Run) -> None:
    """A copy of the baked project with the naive Dockerfile, its compose file and requirements.txt."""
    ctx.naive = ctx.work / "baseline" / ctx.slug
    shutil.copytree(ctx.project, ctx.naive)
    for name in ("Dockerfile", "compose.yaml"):
        shutil.copy(BENCH / "baseline" / name, ctx.naive / name)
    export_requirements(
        ctx,
    )


def locked_requirements(ctx: Run) -> str:
    """The locked packages, read from uv.lock as it is (--frozen needs no interpreter: the host may have none of
    the project's Python; the builds' `uv sync --locked` checks the lock against pyproject.toml)."""
    return run(
        [ctx.uv, "export", "--no-dev", "--no-hashes", "--frozen", "--no-header", "--no-emit-project", "--quiet"],
        cwd=ctx.project,
        env=clean_env(),
    ).stdout


def export_requirements(ctx: Run) -> None:
    requirements = run(
        [ctx.uv, "export", "--no-dev", "--no-hashes", "--frozen", "--no-header", "--no-emit-project", "--quiet"],
        cwd=ctx.naive,
        env=clean_env(),
    ).stdout
    (ctx.naive / "requirements.txt").write_text(requirements)


def relock(ctx: Run) -> None:
    """`uv lock` under the project's own Python: the host's if it has one, else in uv's image with that Python
    (scripts/pythons.py, which the template's tests use for the same reason)."""
    spec = importlib.util.spec_from_file_location("pythons", ROOT / "scripts" / "pythons.py")
    pythons = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pythons)
    run(pythons.uv(ctx.python, ctx.project, "lock", "--quiet"), cwd=ctx.project, env=clean_env(), timeout=600)
