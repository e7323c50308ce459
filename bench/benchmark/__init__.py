"""The benchmark behind `uv run bench/run.py` (see docs/benchmarks.md). Where things are:

main.py     the order of a run, the command's options, and --only backups (that part alone)
state.py    what one run carries from step to step (Run)
project.py  baking, and the baked project's parts (Dockerfile stages, compose images, build context)
engine.py   the Docker engine: lock, clean-up, images this run built, stand-ins, the engine's name
builds.py   build figures: BuildKit builds timed, cold builds, rebuilds, the venv-matches-lock check
sizes.py    size figures: images, their contents, their floors
live.py     the live stacks: start-up, static file and home page under load, memory
backups.py  backup and restore of the live stack: a database filled to ~300 MB, make backup, make restore
load.py     how loads run: HTTP probes, wrk, memory sampling
report.py   how the report is written: table and goals, chart, docs/benchmarks.md
"""
