#!/usr/bin/env python3
"""Write the uv.lock of every combination the template can bake into {{cookiecutter.project_slug}}/.locks/.

The baked project's dependencies depend on six answers (Python version, Django version, which
services: none, a key-value store (Valkey and Redis both use redis-py), a store + Celery; Sentry; the
API framework: none, drf or ninja; and media_storage: local or s3).
This script bakes each combination without hooks, runs `uv lock` in it, and stores the result; the
post-gen hook picks the matching one, so baking itself never needs the network.
Run it after changing any version in cookiecutter.json:

    uv run python scripts/lock.py            # add --upgrade to move the transitive pins too

A Python version this machine lacks is locked in uv's image with that Python (scripts/pythons.py).
"""

import argparse
import itertools
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cookiecutter.main import cookiecutter

import pythons

TEMPLATE = Path(__file__).resolve().parent.parent
LOCKS = TEMPLATE / "{{cookiecutter.project_slug}}" / ".locks"
SERVICES = {"base": ("none", "n"), "store": ("valkey", "n"), "celery": ("valkey", "y")}
PYTHONS = ["3.14", "3.13", "3.12", "3.15"]
DJANGOS = ["5.2", "6.1"]
# Django 5.2 does not support Python 3.15 (the pre-gen hook refuses the pair).
UNSUPPORTED = {("3.15", "5.2")}
SENTRY = {"": "n", "-sentry": "y"}
# API: the framework's locks end -drf or -ninja; none keeps the names above.
APIS = {"": "none", "-drf": "drf", "-ninja": "ninja"}
# Media in object storage: media_storage=s3's locks end -s3 (django-storages, boto3); local keeps the names above.
MEDIAS = {"": "local", "-s3": "s3"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upgrade", action="store_true", help="let uv move every unpinned transitive version")
    parser.add_argument("--only", metavar="SUFFIX", help="only the locks whose name ends so, e.g. -sentry.lock")
    parser.add_argument("--jobs", type=int, default=4, help="locks resolved at once (default 4)")
    options = parser.parse_args()
    LOCKS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # Baking changes the working directory (cookiecutter's own), so bake one at a time; uv then locks in parallel.
        baked = []
        combinations = itertools.product(PYTHONS, DJANGOS, SERVICES, SENTRY, APIS, MEDIAS)
        for python, django, services, sentry, api, media in combinations:
            name = f"py{python}-django{django}-{services}{sentry}{api}{media}.lock"
            if (python, django) in UNSUPPORTED or (options.only and not name.endswith(options.only)):
                continue
            key_value_store, use_celery = SERVICES[services]
            answers = {"python_version": python, "django_version": django, "key_value_store": key_value_store}
            answers |= {"use_celery": use_celery, "use_sentry": SENTRY[sentry], "api": APIS[api]}
            answers |= {"media_storage": MEDIAS[media]}
            output = Path(tmp) / name
            project = Path(
                cookiecutter(
                    str(TEMPLATE),
                    no_input=True,
                    accept_hooks=False,
                    output_dir=str(output),
                    extra_context={"project_name": "lockproject", **answers},
                )
            )
            # Keep the pins that still fit: this lock's, or a new Sentry or API lock starts from its plain sibling's.
            previous = LOCKS / name
            start = previous if previous.exists() else LOCKS / name.replace(sentry + api + media + ".lock", ".lock")
            if start.exists() and not options.upgrade:
                shutil.copy(start, project / "uv.lock")
            baked.append((python, project, previous))

        def lock(python: str, project: Path, previous: Path) -> None:
            command = pythons.uv(python, project, "lock", *(["--upgrade"] if options.upgrade else []))
            locked = subprocess.run(command, cwd=project, capture_output=True, text=True)
            if locked.returncode:
                raise SystemExit(f"uv lock failed for {previous.name}:\n{locked.stderr}")
            shutil.copy(project / "uv.lock", previous)
            print(f"wrote {previous.relative_to(TEMPLATE)}", flush=True)

        with ThreadPoolExecutor(options.jobs) as pool:
            for done in [pool.submit(lock, *job) for job in baked]:
                done.result()


if __name__ == "__main__":
    main()
