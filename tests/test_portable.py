"""Issue 22, runnable on any Docker host: the suite and its helpers assume nothing this machine's stand-ins give
and a Docker host with a registry (GitHub's runner, a contributor's laptop) lacks. Images FROM scratch have no
`cat`; public images are pinned and named the same everywhere."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

import pythons
from support import PEBBLE_IMAGE, TEMPLATE, bake, clean_env, require_engine, run, write_pebble_api_root


def test_pebble_is_pinned_to_one_tag_wherever_it_is_named():
    """support.py, the compose override the edge tests copy, .ci/run's stand-ins and the benchmark name one tag."""
    assert re.fullmatch(r"ghcr\.io/letsencrypt/pebble:\d+\.\d+\.\d+", PEBBLE_IMAGE), PEBBLE_IMAGE
    files = ("tests/compose.pebble.yaml", ".ci/run", "bench/benchmark/edge.py", "tests/support.py")
    named = {
        path: set(re.findall(r"ghcr\.io/letsencrypt/pebble[^\s\"'#]*", (TEMPLATE / path).read_text())) for path in files
    }
    assert named == dict.fromkeys(files, {PEBBLE_IMAGE}), named


def test_pebble_api_root_is_read_from_an_image_without_a_shell(tmp_path):
    """The real pebble image is FROM scratch: `docker run --entrypoint cat` fails on it; the helper copies the
    file out of a created container (never started) and removes the container."""
    require_engine()
    pem = "-----BEGIN CERTIFICATE-----\nTUlOSUNB\n-----END CERTIFICATE-----\n"
    context = tmp_path / "context"
    context.mkdir()
    (context / "pebble.minica.pem").write_text(pem)
    # As the real image: nothing but its binary (here absent: the container is never started) and /test.
    (context / "Dockerfile").write_text(
        'FROM scratch\nCOPY pebble.minica.pem /test/certs/pebble.minica.pem\nENTRYPOINT ["/app"]\n'
    )
    image = f"portable-scratch-pebble:{uuid.uuid4().hex[:10]}"
    run(["docker", "build", "-q", "-t", image, str(context)])
    try:
        cat = run(["docker", "run", "--rm", "--entrypoint", "cat", image, "/test/certs/pebble.minica.pem"], check=False)
        assert cat.returncode != 0 and "cat" in cat.stderr, (cat.returncode, cat.stderr)
        project = tmp_path / "project"
        project.mkdir()
        write_pebble_api_root(project, image)
        assert (project / "pebble-api-root.pem").read_text() == pem
        left = run(["docker", "ps", "-aq", "--filter", f"ancestor={image}"]).stdout.split()
        assert left == [], f"containers left behind: {left}"
    finally:
        run(["docker", "rmi", "-f", image], check=False)


def test_pebble_api_root_of_the_pinned_image(tmp_path):
    require_engine()
    write_pebble_api_root(tmp_path)
    assert (tmp_path / "pebble-api-root.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_no_test_reads_files_out_of_an_image_with_cat():
    """`--entrypoint cat` needs a shell userland the image may not have (FROM scratch, distroless)."""
    offenders = [
        str(path.relative_to(TEMPLATE))
        for path in [*(TEMPLATE / "tests").glob("*.py"), *(TEMPLATE / "bench").rglob("*.py")]
        if path != Path(__file__) and re.search(r"""["']--entrypoint["'],\s*["']cat["']""", path.read_text())
    ]
    assert offenders == []


def test_uv_in_an_image_writes_as_the_caller_with_the_images_uv(tmp_path, monkeypatch):
    """scripts/pythons.py, for a Python the host lacks: uv's own image (the template's uv version, never the
    host's binary, which on macOS is no Linux program) run as the caller, so the venv, the lock and the shared
    uv cache hold no file the caller cannot remove. Run as root (this machine), the caller is played by 4242."""
    require_engine()
    cache, project = tmp_path / "cache", tmp_path / "project"
    cache.mkdir()
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "probe"\nversion = "0"\nrequires-python = ">=3.14"\n[tool.uv]\npackage = false\n'
    )
    owner = (os.getuid(), os.getgid())
    if owner[0] == 0:
        owner = (4242, 4343)
        for path in (tmp_path, cache, project, project / "pyproject.toml"):
            os.chown(path, *owner)
        monkeypatch.setattr(os, "getuid", lambda: owner[0])
        monkeypatch.setattr(os, "getgid", lambda: owner[1])
    monkeypatch.setenv("UV_CACHE_DIR", str(cache))  # the host's cache, as `uv cache dir` reports it
    prefix = pythons.in_image("3.14", project)
    assert prefix[-1] == f"ghcr.io/astral-sh/uv:{pythons.UV_VERSION}-python3.14-trixie-slim"
    assert not any(part.endswith("/uv:ro") or part.endswith(":/usr/local/bin/uv") for part in prefix), prefix
    shown = run([*prefix, "sh", "-c", "uv --version && uv sync --offline && id -u && id -g"], cwd=project).stdout
    words = shown.split()
    assert words[:2] == ["uv", pythons.UV_VERSION] and words[-2:] == [str(owner[0]), str(owner[1])], shown
    written = [path for path in (*cache.rglob("*"), *project.rglob("*")) if not path.is_symlink()]
    assert (project / ".venv").is_dir() and (project / "uv.lock").is_file() and any(cache.iterdir()), written
    foreign = [str(path) for path in written if (path.stat().st_uid, path.stat().st_gid) != owner]
    assert foreign == [], f"not the caller's: {foreign[:10]}"


# sed as BSD's (macOS) parses `-i`: the next word is the backup suffix, so GNU's `sed -i SCRIPT FILE` runs FILE as
# the script and fails. Everything else goes to this machine's sed.
BSD_SED = """#!/bin/sh
for arg; do
  case $arg in -i*) echo "sed: 1: \\"$3\\": invalid command code" >&2; exit 1 ;; esac
done
exec {sed} "$@"
"""
# docker for ./live pg-upgrade's first call, the check of the rewritten postgres.env (which it exports): keep what
# it read, refuse it.
DOCKER_KEEPS_THE_REWRITE = """#!/bin/sh
[ "$1 $2 $3" = "compose config -q" ] || {{ echo "docker stub: unexpected $*" >&2; exit 99; }}
echo "$POSTGRES_MAJOR $POSTGRES_VOLUME_AT" >{capture}
exit 1
"""


def test_pg_upgrade_rewrites_the_major_with_a_bsd_sed(cookies, tmp_path):
    """make pg-upgrade on a Mac: 17 to 18 moves the volume's mount (/var/lib/postgresql), without GNU sed's -i
    (before: sed failed and the upgrade stopped there). The docker stub refuses the rewritten postgres.env, so the
    script stops before anything else, and must have changed nothing."""
    project = bake(cookies, project_name="Portable Upgrade", postgres_version="17")
    bin_dir, capture = tmp_path / "bin", tmp_path / "rewritten.txt"
    bin_dir.mkdir()
    for name, text in (
        ("sed", BSD_SED.format(sed=shutil.which("sed"))),
        ("docker", DOCKER_KEEPS_THE_REWRITE.format(capture=capture)),
    ):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    before = {name: (project / name).read_text() for name in ("compose.prod.yaml", "postgres.env")}
    env = clean_env(PATH=f"{bin_dir}:{os.environ['PATH']}")
    result = run(["./live", "pg-upgrade", "TO=18", "CONFIRM=yes"], cwd=project, env=env, check=False)
    assert result.returncode == 1 and "could not rewrite postgres.env" in result.stderr, result.stderr
    assert capture.read_text() == "18 /var/lib/postgresql\n"
    assert {name: (project / name).read_text() for name in before} == before
    assert sorted(path.name for path in project.glob("postgres.env*")) == ["postgres.env"]


# GNU-only forms (BSD/macOS lack them or spell them differently) in what runs on the host: the Makefile and the
# scripts it runs there. backup.sh, offsite.sh and nginx/run.sh run in the project's Linux images.
GNU_ONLY = re.compile(r"sed -i|readlink -f|stat -c|date -d|grep -\w*P|\btimeout \d|(?<!\()\$\(\w+ [^)]*\| wc -l\)")


def test_host_scripts_use_no_gnu_only_forms(cookies):
    project = bake(cookies, project_name="Portable Scripts")
    found = [
        f"{name}:{number}: {line.strip()}"
        for name in ("Makefile", "live")
        for number, line in enumerate((project / name).read_text().splitlines(), 1)
        if GNU_ONLY.search(line) and not line.lstrip().startswith("#")
    ]
    assert found == []
