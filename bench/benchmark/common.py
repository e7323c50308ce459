"""Paths, names and the small helpers every module uses: running a command, the environment for the
baked project's commands, logging."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the template's checkout (this file is bench/benchmark/common.py)
BENCH = ROOT / "bench"
DOCS = ROOT / "docs"
ENGINE = Path(os.environ.get("CONTAINER_ENGINE_DIR", ROOT.parent / "shared" / "container-engine"))
MB = 1_000_000  # sizes in MB as Docker prints them (10^6 bytes)
TAG = "run"
IMAGES = {
    "app": f"bench-app:{TAG}",
    "static": f"bench-static:{TAG}",
    "offsite": f"bench-offsite:{TAG}",
    "backup": "bench-backup",  # tagged by the PostgreSQL major (pg18), as make build-live tags it
    "naive": f"bench-naive:{TAG}",
    "ceiling": f"bench-ceiling:{TAG}",
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
