"""The state one benchmark run carries from step to step."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import uv_binary
from .engine import Cleanup
from .load import Load


class Run:
    """One benchmark run: the options, the working directory, the clean-up steps, the results so far, and
    (once baked) the facts about the project: project, slug, python, prod_env, domain, store (valkey,
    redis), bases, postgres_data, naive (the baseline's copy). The measuring modules read and fill it."""

    def __init__(self, args: argparse.Namespace, work: Path, cleanup: Cleanup):
        self.args, self.work, self.cleanup = args, work, cleanup
        self.log_file = work / "bench.log"
        self.load = Load(args.duration, args.connections, args.threads, args.warmup)
        self.results: dict = {"figures": {}}
        self.uv = uv_binary()
