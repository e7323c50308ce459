"""The order of a run: bake, then under the engine lock build, size, start and load, rebuild; then the report."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from . import api, backups, builds, edge, engine, live, project, sizes
from .common import BENCH, DOCS, ROOT, log, run
from .report import (
    api_table,
    backups_table,
    chart,
    edge_table,
    frontend_table,
    markdown,
    plain,
    table,
    update_api_doc,
    update_backups_doc,
    update_docs,
    update_edge_doc,
    update_frontend_doc,
)
from .state import Run


def main(description: str) -> int:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
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
        "--build-rounds",
        type=int,
        default=3,
        help="cold builds and code-change rebuilds, each (default 3; the fastest counts)",
    )
    parser.add_argument("--lock", default="/tmp/engine.lock", help="flock held for the whole run")
    parser.add_argument(
        "--no-lock", action="store_const", const="", dest="lock", help="the caller already holds the engine lock"
    )
    parser.add_argument("--results", type=Path, default=BENCH / "results.json")
    parser.add_argument("--keep-log", type=Path, help="copy the build and load log here before clean-up")
    parser.add_argument(
        "--only",
        choices=["backups", "edge", "frontend", "api"],
        help="run one part alone: backups (fill the live database, time make backup and make restore), edge "
        "(HTTPS through the edge beside nginx alone, and a release), frontend (both images' cold build and "
        "rebuilds with frontend=tailwind beside none), or api (a list call of each API framework beside the home "
        "page); its figures replace that part of the results and docs/benchmarks.md only",
    )
    args = parser.parse_args()
    if args.only:
        return only_part(args, args.only)

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
    with workspace(args) as ctx:
        project.bake_times(ctx)  # no engine needed: before taking the lock
        project.bake_project(ctx)
        project.baseline_context(ctx)
        with engine_session(ctx):
            ctx.results["load_average"] = {"start": os.getloadavg()[0]}
            builds.cold_builds(ctx)
            sizes.sizes(ctx)
            live.live_stacks(ctx)
            backups.backup_restore(ctx)
            edge.edge_stack(ctx)
            builds.rebuilds(ctx)
            ctx.results["machine"] = engine.machine(ctx)
            ctx.results["load_average"]["end"] = os.getloadavg()[0]

    results = ctx.results
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
    results["run_seconds"] = time.perf_counter() - started - engine.LOCK_WAIT["seconds"]
    results["lock_wait_seconds"] = engine.LOCK_WAIT["seconds"]
    rows, goals = table(results)
    results["goals"] = goals
    results["table"] = rows
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    DOCS.mkdir(exist_ok=True)
    chart(results, DOCS / "benchmarks.png")
    update_docs(results, markdown(rows))
    update_backups_doc(results)
    update_edge_doc(results)
    print(plain(rows))
    print("\nbackup and restore:\n" + backups_table(results["backups"]))
    print("\nthe HTTPS edge and a release:\n" + edge_table(results["edge"]))
    print(
        f"\nwrote {args.results}, {DOCS / 'benchmarks.png'} and the table in {DOCS / 'benchmarks.md'} "
        f"({results['run_seconds'] / 60:.1f} min)"
    )
    return 0


PARTS = {
    # name: (the step that measures it, its table, the update of docs/benchmarks.md)
    "backups": (backups.backup_restore, backups_table, update_backups_doc),
    "edge": (edge.edge_stack, edge_table, update_edge_doc),
    # Issue 25: bakes its own two projects (frontend none and tailwind); no build before it.
    "frontend": (builds.frontend_builds, frontend_table, update_frontend_doc),
    "api": (api.api_stacks, api_table, update_api_doc),
}


def only_part(args: argparse.Namespace, part: str) -> int:
    """One part's figures alone (backups: fill, back up, restore; edge: HTTPS beside nginx alone, a release),
    after baking and building the live images. Their entry in the results file and their table in
    docs/benchmarks.md are replaced; nothing else is."""
    step, part_table, update_doc = PARTS[part]
    if part == "api" and not shutil.which("wrk"):
        print("bench: wrk is missing: install it with `apt-get install -y wrk` (Debian package wrk)", file=sys.stderr)
        return 2
    if not shutil.which("docker"):
        print("bench: docker is missing: a Docker CLI with Compose v2 is needed", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with workspace(args) as ctx:
        project.bake_project(ctx)
        with engine_session(ctx):
            if part == "frontend":
                step(ctx)  # sets the builder for machine() itself
            else:
                # The api part builds each framework's project itself (make build-live), not the default one.
                build = (
                    builds.build_ours(ctx, f"for the {part}")
                    if part != "api"
                    else {"applayer": {"builder": "BuildKit"}}
                )
                step(ctx)
                ctx.results["figures"]["build_cold_s"] = {"ours_detail": build}  # the builder, for machine()
            ctx.results["machine"] = engine.machine(ctx)
    results = json.loads(args.results.read_text()) if args.results.exists() else {"figures": {}}
    results[part] = dict(
        ctx.results[part],
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=ctx.results["machine"],
        commit=run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=False).stdout.strip(),
    )
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    update_doc(results)
    print(part_table(results[part]))
    print(
        f"\nwrote the {part} entry of {args.results} and its table in {DOCS / 'benchmarks.md'} "
        f"({(time.perf_counter() - started) / 60:.1f} min)"
    )
    return 0


@contextlib.contextmanager
def workspace(args: argparse.Namespace) -> Iterator[Run]:
    """A run in a temporary directory; on the way out, even on Ctrl-C or SIGTERM, every clean-up step runs."""
    cleanup = engine.Cleanup()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    cleanup.add("temporary directory", lambda: shutil.rmtree(work, ignore_errors=True))
    log(f"working in {work} (log: {work / 'bench.log'}, removed at the end)")
    try:
        yield Run(args, work, cleanup)
    finally:
        cleanup.run()


@contextlib.contextmanager
def engine_session(ctx: Run) -> Iterator[None]:
    """The engine lock held and the engine ready for the measuring steps. On a failure the end of the build and
    load log is printed; the log is kept when --keep-log asks; the stacks and images made are removed before the
    lock is released, so the next holder finds the engine as it was."""
    args, log_file = ctx.args, ctx.log_file
    with engine.engine_lock(args.lock):
        try:
            engine.prepare_engine(ctx)
            ctx.cleanup.add("images", engine.remove_created_images)
            yield
        except BaseException:
            print(log_file.read_text()[-6000:] if log_file.exists() else "", file=sys.stderr)
            raise
        finally:
            if args.keep_log and log_file.exists():
                shutil.copy(log_file, args.keep_log)
            log("cleaning up")
            ctx.cleanup.run()
