"""Run uv for a baked project under the Python version it was baked for, wherever that Python is.

A host interpreter when this machine has one (PATH, uv-managed or pyenv), else uv's own image with that Python,
ghcr.io/astral-sh/uv:<the template's uv>-pythonX.Y-trixie-slim: machines without a 3.14 or 3.15 interpreter (and
without uv's interpreter downloads) can still lock, install and test those projects. The image's uv runs there,
never the host's binary (on macOS that is no Linux binary). The container runs as the caller's uid and gid, so
what it writes in the project and in the shared uv cache belongs to the caller, not to root. The project folder
is mounted at the same path, so paths mean the same inside and out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

UV = str(Path(sys.executable).parent / "uv") if (Path(sys.executable).parent / "uv").exists() else "uv"
# The uv the baked projects pin (cookiecutter.json), so the image's uv writes the same lock format.
UV_VERSION = json.loads((Path(__file__).resolve().parent.parent / "cookiecutter.json").read_text())["_versions"]["uv"]


def image(version: str) -> str:
    """uv's image with Python VERSION (Debian trixie, as the baked python:X-slim images)."""
    return f"ghcr.io/astral-sh/uv:{UV_VERSION}-python{version}-trixie-slim"


def host_interpreter(version: str) -> str | None:
    """A host interpreter of this version: one uv finds (PATH, uv-managed), else a pyenv build."""
    found = subprocess.run([UV, "python", "find", "--no-python-downloads", version], capture_output=True, text=True)
    if found.returncode == 0 and found.stdout.strip():
        return found.stdout.strip()
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    builds = sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))
    return str(builds[-1]) if builds else None


def in_image(version: str, project: Path, env: dict[str, str] | None = None) -> list[str]:
    """The `docker run` prefix that runs a command in uv's image with this Python, in the project folder."""
    if not shutil.which("docker"):
        sys.exit(f"No Python {version} on this machine and no docker to run {image(version)}.")
    cache = subprocess.run([UV, "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()
    Path(cache).mkdir(parents=True, exist_ok=True)
    command = ["docker", "run", "--rm", "--user", f"{os.getuid()}:{os.getgid()}"]
    command += ["-v", f"{project}:{project}", "-w", str(project), "-v", f"{cache}:/uv-cache"]
    # A uid the image has no account for: a HOME it can write, and the host's cache where uv looks for it.
    command += ["-e", "HOME=/tmp", "-e", "UV_CACHE_DIR=/uv-cache", "-e", "UV_PYTHON_DOWNLOADS=never"]
    for key, value in (env or {}).items():
        command += ["-e", f"{key}={value}"]
    return [*command, image(version)]


def uv(version: str, project: Path, subcommand: str, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """`uv SUBCOMMAND ARGS` for the project under this Python: the host's uv and interpreter, or the image.
    `env` is for the image (a host command takes its environment from the caller)."""
    interpreter = host_interpreter(version)
    if interpreter:
        return [UV, subcommand, "--python", interpreter, *args]
    return [*in_image(version, project, env), "uv", subcommand, *args]
