"""Build figures: BuildKit builds timed step by step, the cold builds and the rebuilds after a code and a
dependency change, and the check that each image's venv matches uv.lock."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .common import EXTRA_PACKAGE, IMAGES, BenchError, clean_env, log
from .engine import in_image, remember_image, sh_in_image
from .project import export_requirements, locked_requirements, relock

if TYPE_CHECKING:
    from .state import Run

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


def build_ours(ctx: Run, label: str, cold: bool = False) -> dict:
    """Both images the way `make build-live` builds them: applayer, then staticlayer. Cold: the applayer
    build uses no cache; the staticlayer build then reuses what that build just made (appbuilder,
    staticbuilder), as on a machine's first `make build-live`, and nothing older (--no-cache-filter)."""
    app_extra = ["--no-cache"] if cold else []
    static_extra = ["--no-cache-filter", "staticlayer"] if cold else []
    app = timed_build(ctx.project, IMAGES["app"], "--target", "applayer", *app_extra, log_file=ctx.log_file)
    static = timed_build(ctx.project, IMAGES["static"], "--target", "staticlayer", *static_extra, log_file=ctx.log_file)
    total = app["seconds"] + static["seconds"]
    check = venv_matches_lock(
        IMAGES["app"],
        locked_requirements(
            ctx,
        ),
    )
    if not check["matches"]:
        log(
            f"  WARNING: the applayer's venv does not match uv.lock: missing {check['missing']}, "
            f"unexpected {check['unexpected']}"
        )
    log(f"build ours ({label}): {total:.1f}s (applayer {app['seconds']:.1f}s, staticlayer {static['seconds']:.1f}s)")
    return {"seconds": total, "applayer": app, "staticlayer": static, "venv_matches_lock": check}


def build_naive(ctx: Run, label: str, no_cache: bool) -> dict:
    extra = ["--no-cache"] if no_cache else []
    result = timed_build(
        ctx.naive, IMAGES["naive"], "--build-arg", f"PYTHON_VERSION={ctx.python}", *extra, log_file=ctx.log_file
    )
    log(f"build baseline ({label}): {result['seconds']:.1f}s")
    return result


def repeated(ctx: Run, ours_build, naive_build) -> dict:
    """ours and the baseline, alternating for --build-rounds rounds. The figure is the fastest round of each:
    the engine is shared, and other runs' load only ever adds time, so the fastest round is the closest to the
    build's own cost (a median still follows the load when most rounds meet it). Every round is kept, with
    the medians, and the fastest round of ours in detail."""
    ours, naive = [], []
    for _ in range(ctx.args.build_rounds):
        ours.append(ours_build())
        naive.append(naive_build())
    return {
        "ours": min(r["seconds"] for r in ours),
        "baseline": min(r["seconds"] for r in naive),
        "ours_median": statistics.median(r["seconds"] for r in ours),
        "baseline_median": statistics.median(r["seconds"] for r in naive),
        "ours_runs": [r["seconds"] for r in ours],
        "baseline_runs": [r["seconds"] for r in naive],
        "ours_detail": min(ours, key=lambda r: r["seconds"]),
        "baseline_detail": min(naive, key=lambda r: r["seconds"]),
    }


def cold_builds(ctx: Run) -> None:
    """Cold = no build cache and an empty uv cache: BuildKit's --no-cache also gives a cache mount a fresh,
    empty directory (checked: uv must download every locked package). The baseline's pip keeps no cache."""

    def ours() -> dict:
        result = build_ours(ctx, "cold", cold=True)
        uv = result["applayer"]["uv"]
        if not uv.get("prepared") or uv.get("prepared") != uv.get("installed"):
            raise BenchError(f"the cold build's uv did not download every package ({uv}): was its cache empty?")
        return result

    ctx.results["figures"]["build_cold_s"] = repeated(ctx, ours, lambda: build_naive(ctx, "cold", no_cache=True))


def rebuilds(ctx: Run) -> None:
    figures = ctx.results["figures"]
    # BuildKit's cache is content-addressed and outlives a run: a change made the same way by an earlier run
    # would come back from its cache. Every change names this run (and round), so each rebuild really builds.
    run_id = f"bench run {os.getpid()}-{time.time_ns()}"
    changes = iter(range(1, 1000))

    def change_code() -> str:
        stamp = f"{run_id} change {next(changes)}"
        for root in (ctx.project, ctx.naive):
            views = root / ctx.slug / "views.py"
            views.write_text(views.read_text() + f"# {stamp}: a one-line change\n")
        return stamp

    def ours() -> dict:
        stamp = change_code()
        result = build_ours(ctx, "after a code change")
        edited = in_image(IMAGES["app"], "tail", "-n", "1", f"/app/{ctx.slug}/views.py")
        result["change_in_image"] = stamp in edited
        if not result["change_in_image"]:
            raise BenchError("the rebuilt applayer lacks the code change")
        return result

    # The baseline rebuilds after the same change (ours made it in both copies just before).
    figures["rebuild_code_s"] = repeated(ctx, ours, lambda: build_naive(ctx, "after a code change", no_cache=False))
    stamp = run_id
    # A dependency change: one more pinned package, relocked.
    pyproject = ctx.project / "pyproject.toml"
    text = pyproject.read_text()
    new = re.sub(r"(dependencies = \[\n)", rf'\1    "{EXTRA_PACKAGE}",\n', text, count=1)
    if new == text:
        raise BenchError("could not add a dependency to pyproject.toml")
    pyproject.write_text(f"{new}# {stamp}\n")
    relock(ctx)
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(ctx.project / name, ctx.naive / name)
    export_requirements(
        ctx,
    )
    ours = build_ours(ctx, "after a dependency change")
    if not ours["applayer"]["uv"].get("installed"):
        raise BenchError("uv sync did not run after the dependency change")
    naive = build_naive(ctx, "after a dependency change", no_cache=False)
    figures["rebuild_deps_s"] = {
        "ours": ours["seconds"],
        "baseline": naive["seconds"],
        "ours_detail": ours,
        "baseline_detail": naive,
        "package": EXTRA_PACKAGE,
    }


def frontend_builds(ctx: Run) -> None:
    """Issue 25: both live images (applayer, then staticlayer, as `make build-live` builds them) of the default
    answers with frontend=tailwind beside frontend=none: a cold build (no build cache; uv's and npm's cache mounts
    empty), then rebuilds after a one-line code change (views.py) and a one-line template change (home.html: with
    Tailwind, its CSS is rebuilt). --build-rounds rounds of each, the variants alternating; the fastest counts."""
    from .common import ROOT
    from .engine import image_size
    from .project import bake

    projects = {}
    for frontend in ("none", "tailwind"):
        out = ctx.work / f"frontend-{frontend}"
        bake(ROOT, out, f"frontend={frontend}")
        projects[frontend] = next(out.iterdir())
    run_id = f"bench frontend {os.getpid()}-{time.time_ns()}"
    runs: dict[str, dict[str, list[dict]]] = {f: {"cold": [], "code": [], "template": []} for f in projects}
    sizes: dict[str, dict[str, int]] = {}
    for _ in range(ctx.args.build_rounds):
        for frontend, path in projects.items():
            ctx.project = path
            runs[frontend]["cold"].append(build_ours(ctx, f"frontend={frontend}, cold", cold=True))
            sizes[frontend] = {"applayer": image_size(IMAGES["app"]), "staticlayer": image_size(IMAGES["static"])}
    for round_number in range(ctx.args.build_rounds):
        for frontend, path in projects.items():
            ctx.project, slug = path, path.name
            stamp = f"{run_id} round {round_number}"
            views = path / slug / "views.py"
            views.write_text(views.read_text() + f"# {stamp}: a one-line change\n")
            result = build_ours(ctx, f"frontend={frontend}, after a code change")
            if stamp not in in_image(IMAGES["app"], "tail", "-n", "1", f"/app/{slug}/views.py"):
                raise BenchError("the rebuilt applayer lacks the code change")
            runs[frontend]["code"].append(result)
            home = path / slug / "templates" / slug / "home.html"
            home.write_text(home.read_text() + f"{{# {stamp}: a one-line change #}}\n")
            runs[frontend]["template"].append(build_ours(ctx, f"frontend={frontend}, after a template change"))
    ctx.results["frontend"] = {
        frontend: {
            **{
                kind: {
                    "seconds": min(r["seconds"] for r in results),
                    "runs": [r["seconds"] for r in results],
                    "detail": min(results, key=lambda r: r["seconds"]),
                }
                for kind, results in kinds.items()
            },
            "image_bytes": sizes[frontend],
        }
        for frontend, kinds in runs.items()
    }
    ctx.results["figures"]["build_cold_s"] = {"ours_detail": runs["tailwind"]["cold"][0]}  # the builder, for machine()
