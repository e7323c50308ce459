"""Backup and restore of the live stack (issue #13): the database filled to a stated size with generated
rows, then `make backup` and `make restore NAME=latest CONFIRM=yes` timed as a user runs them."""

from __future__ import annotations

import re
import shutil
import time
from typing import TYPE_CHECKING

from .builds import timed_build
from .common import IMAGES, MB, STACK_TIMEOUT, TAG, BenchError, clean_env, free_port, log, run
from .project import env_file

if TYPE_CHECKING:
    from .state import Run

PROJECT = "bench-backup"
# Rows of a typical table: a key, a number, a time and a few dozen bytes of text that compress about as
# well as real text (hex digests: ~2x, unlike repeated strings). ~300 MB in PostgreSQL for 2,000,000 rows.
ROWS = 2_000_000
FILL = f"""
CREATE TABLE bench_rows (id bigint PRIMARY KEY, amount integer, at timestamptz, note text);
INSERT INTO bench_rows
SELECT g, ((g::bigint * 7919) % 100000)::int, now() - g * interval '1 second', md5(g::text) || ' ' || md5((g + 1)::text)
FROM generate_series(1, {ROWS}) AS g;
ANALYZE bench_rows;
"""


def build_offsite(ctx: Run) -> None:
    """The live stack's backup images (the AWS CLI for off-site copies; PostgreSQL's image with age for the
    backups, tagged by its major as make build-live does), once per run; no figure of their own."""
    if not getattr(ctx, "offsite_built", False):
        timed_build(ctx.project, IMAGES["offsite"], "--target", "offsite", log_file=ctx.log_file)
        major = env_file(ctx.project / "postgres.env")["POSTGRES_MAJOR"]
        timed_build(ctx.project, f"{IMAGES['backup']}:pg{major}", "--target", "backup", log_file=ctx.log_file)
        ctx.offsite_built = True


def backup_restore(ctx: Run) -> None:
    """Fills the live database, times a backup and a restore of it, and checks the rows came back."""
    project = ctx.project
    build_offsite(ctx)
    env = clean_env(
        COMPOSE_PROJECT_NAME=PROJECT,  # beside any other stack of this project on the engine
        APP_IMAGE=IMAGES["app"].split(":")[0],
        STATIC_IMAGE=IMAGES["static"].split(":")[0],
        OFFSITE_IMAGE=IMAGES["offsite"].split(":")[0],
        BACKUP_IMAGE=IMAGES["backup"],
        TAG=TAG,
        # nginx alone on a loopback port (the behind-proxy mode): no edge asking a CA for a certificate.
        BEHIND_PROXY="1",
        LIVE_PORT=str(free_port()),
        BACKUP_PATH=str(ctx.work / "backups"),
    )

    def compose(*args: str, check: bool = True, timeout: float = STACK_TIMEOUT):
        return run(
            ["docker", "compose", "-f", "compose.prod.yaml", "-f", "compose.behind-proxy.yaml", *args],
            cwd=project,
            env=env,
            check=check,
            timeout=timeout,
        )

    def make(*args: str) -> tuple[float, str]:
        started = time.perf_counter()
        result = run(["make", *args], cwd=project, env=env, timeout=1800)
        return time.perf_counter() - started, result.stdout + result.stderr

    def sql(query: str) -> str:
        return compose("exec", "-T", "db", "psql", "-U", "postgres", "-d", ctx.slug, "-tAc", query).stdout.strip()

    def down() -> None:
        compose("down", "-v", "--remove-orphans", "--timeout", "10", check=False)
        shutil.rmtree(ctx.work / "backups", ignore_errors=True)

    down()
    ctx.cleanup.add(f"{PROJECT} stack", down)
    try:
        compose("run", "--rm", "app", "python", "manage.py", "migrate", "--noinput")
        compose("up", "-d", "--wait", "--wait-timeout", str(STACK_TIMEOUT), timeout=STACK_TIMEOUT + 60)
        started = time.perf_counter()
        compose("exec", "-T", "db", "psql", "-q", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-d", ctx.slug, "-c", FILL)
        fill_s = time.perf_counter() - started
        size = int(sql("SELECT pg_database_size(current_database())"))
        log(f"backups: database filled to {size / MB:.0f} MB ({ROWS:,} rows) in {fill_s:.1f}s")

        backup_s, output = make("backup")
        taken = re.search(r"OK (db-\d{8}T\d{6}Z\.dump\.age) \((\d+) bytes\)", output)
        if not taken:
            raise BenchError(f"make backup printed no backup:\n{output[-3000:]}")
        dump = int(taken.group(2))
        log(f"backups: make backup {backup_s:.1f}s, {taken.group(1)} is {dump / MB:.1f} MB")
        sql("DELETE FROM bench_rows WHERE id > 1000")  # a change the restore must undo
        restore_s, output = make("restore", "NAME=latest", "CONFIRM=yes")
        if f"restored {taken.group(1)}" not in output:
            raise BenchError(f"make restore did not restore {taken.group(1)}:\n{output[-3000:]}")
        rows = int(sql("SELECT count(*) FROM bench_rows"))
        if rows != ROWS:
            raise BenchError(f"the restore brought back {rows} rows of {ROWS}")
        log(f"backups: make restore {restore_s:.1f}s, {rows:,} rows back")
    finally:
        with open(ctx.log_file, "a") as handle:
            handle.write(compose("logs", "--no-color", "--tail", "60", check=False).stdout)
        down()
    ctx.results["backups"] = {
        "rows": ROWS,
        "database_mb": size / MB,
        "fill_s": fill_s,
        "dump_mb": dump / MB,
        "backup_s": backup_s,
        "restore_s": restore_s,
        "what": "make backup (pg_dump -Fc of the database, tar.gz of the media, each encrypted with age and "
        "sealed; off-site copies off) and make restore NAME=latest CONFIRM=yes (checks the seal, decrypts and reads "
        "the whole dump, stops the writers, restores into a new database as the app's role, swaps it in, starts "
        "the stack and waits for it to be healthy)",
    }
