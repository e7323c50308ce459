#!/usr/bin/env python3
"""Turn a copy of this template (GitHub's "Use this template") into the baked project, in place.

Run by .github/workflows/use-this-template.yml on the first push to a repository created from the
template; it works the same locally in a fresh copy:

    uv run python scripts/bake_into_repository.py --name "My Shop" [--commit]

It bakes the template with the default answers (the name from --name, e.g. the repository's name),
replaces the repository's files with the baked project's and, with --commit, commits the result.
The generated .envs/prod.env (fresh secrets) is not kept: it must never reach git. Bake again
locally, or copy .envs/prod.env.example and fill it in, to get one.
"""

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

REPOSITORY = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="the project's name, e.g. the repository's name")
    parser.add_argument("--domain", default="example.com", help="the live site's domain")
    parser.add_argument("--commit", action="store_true", help="commit the result")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        baked = Path(
            cookiecutter(
                str(REPOSITORY),
                no_input=True,
                output_dir=tmp,
                extra_context={"project_name": options.name, "domain_name": options.domain},
            )
        )
        (baked / ".envs/prod.env").unlink()  # secrets stay out of the repository
        for path in REPOSITORY.iterdir():
            if path.name != ".git":
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        for path in baked.iterdir():
            shutil.move(str(path), REPOSITORY / path.name)

    if options.commit:
        subprocess.run(["git", "add", "--all"], cwd=REPOSITORY, check=True)
        subprocess.run(
            ["git", "commit", "--quiet", "-m", f"Bake {options.name} from the template"], cwd=REPOSITORY, check=True
        )
    print(f"The repository now holds the baked project {baked.name}.")


if __name__ == "__main__":
    main()
