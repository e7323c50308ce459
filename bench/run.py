# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "cookiecutter==2.7.1",
#     "matplotlib==3.11.2",
#     "uv==0.13.9",
# ]
# ///
"""Benchmark of the template (issue #6): bakes a project with the default answers, builds and runs it,
and measures every figure beside a deliberately naive baseline built from the same baked project
(bench/baseline/). Prints a table, writes bench/results.json, docs/benchmarks.png and the table in
docs/benchmarks.md.

    uv run bench/run.py            # needs Docker Engine with BuildKit + Compose v2, wrk (apt-get install -y wrk)
    uv run bench/run.py --only backups   # backup and restore of a ~300 MB database alone (no wrk needed)
    uv run bench/run.py --only api       # a list call of each API framework (api=drf, api=ninja) beside the home page

The whole run holds an exclusive flock on /tmp/engine.lock (the Docker engine is shared; --no-lock
when the caller already holds it). Everything it creates (containers, volumes, images tagged bench-*,
the images its builds made, temporary directories) is removed at the end, also
on failure; nothing else is touched, so other runs can use the engine meanwhile.
"""

import sys

from benchmark.common import BenchError  # bench/benchmark/: the package next to this script
from benchmark.main import main

if __name__ == "__main__":
    try:
        sys.exit(main(__doc__))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(1)
