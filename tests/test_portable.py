"""Issue 22, runnable on any Docker host: the suite and its helpers assume nothing this machine's stand-ins give
and a Docker host with a registry (GitHub's runner, a contributor's laptop) lacks. Images FROM scratch have no
`cat`; public images are pinned and named the same everywhere."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from support import PEBBLE_IMAGE, TEMPLATE, require_engine, run, write_pebble_api_root


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
