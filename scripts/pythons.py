"""Run uv for a baked project under the Python version it was baked for, wherever that Python is.

A host interpreter when this machine has one (PATH, uv-managed or pyenv), else the `python:X-slim`
image with this uv mounted into it: machines without a 3.14 or 3.15 interpreter (and without
uv's interpreter downloads) can still lock, install and test those projects. The project folder is
mounted at the same path, so paths mean the same inside and out; the uv cache is shared.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

UV = str(Path(sys.executable).parent / "uv") if (Path(sys.executable).parent / "uv").exists() else "uv"


def host_interpreter(version: str) -> str | None:
    """A host interpreter of this version: one uv finds (PATH, uv-managed), else a pyenv build."""
    found = subprocess.run([UV, "python", "find", "--no-python-downloads", version], capture_output=True, text=True)
    if found.returncode == 0 and found.stdout.strip():
        return found.stdout.strip()
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    builds = sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))
    return str(builds[-1]) if builds else None


def in_image(version: str, project: Path, env: dict[str, str] | None = None) -> list[str]:
    """The `docker run` prefix that runs a command in python:VERSION-slim, in the project folder."""
    if not shutil.which("docker"):
        sys.exit(f"No Python {version} on this machine and no docker to run python:{version}-slim.")
    cache = subprocess.run([UV, "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()
    Path(cache).mkdir(parents=True, exist_ok=True)
    command = ["docker", "run", "--rm", "-v", f"{project}:{project}", "-w", str(project)]
    command += ["-v", f"{shutil.which(UV) or UV}:/usr/local/bin/uv:ro", "-v", f"{cache}:/root/.cache/uv"]
    command += ["-e", "UV_PYTHON_DOWNLOADS=never"]
    for key, value in (env or {}).items():
        command += ["-e", f"{key}={value}"]
    return [*command, f"python:{version}-slim"]


def uv(version: str, project: Path, subcommand: str, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """`uv SUBCOMMAND ARGS` for the project under this Python: the host's uv and interpreter, or the image.
    `env` is for the image (a host command takes its environment from the caller)."""
    interpreter = host_interpreter(version)
    if interpreter:
        return [UV, subcommand, "--python", interpreter, *args]
    return [*in_image(version, project, env), "uv", subcommand, *args]
