#!/usr/bin/env python3
"""Turn a copy of this template (GitHub's "Use this template") into the baked project, in place.

Run by .github/workflows/use-this-template.yml on the first push to a repository created from the
template; it works the same locally in a fresh copy:

    uv run python scripts/bake_into_repository.py --name "My Shop" [--commit]

It bakes the template with the default answers (the name from --name, e.g. the repository's name),
replaces the repository's files with the baked project's and, with --commit, commits the result.
The generated .envs/prod.env (fresh secrets) is not kept: it must never reach git. Bake again
locally, or copy .envs/prod.env.example and fill it in, to get one.

.github/workflows/ is left exactly as it is: GitHub refuses a push from the workflow's built-in token
that touches it. The baked project's workflows go to .github/baked-workflows/, and its README gets the
one step that moves them in (a push with the user's own credentials).
"""

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

REPOSITORY = Path(__file__).resolve().parent.parent
WORKFLOWS = Path(".github/workflows")
PARKED = Path(".github/baked-workflows")
FIRST_STEP = """## First step: turn on CI

This repository was baked by GitHub's "Use this template" workflow, whose token may not change
`.github/workflows/`. The project's CI waits in `.github/baked-workflows/`; move it in and push with
your own credentials (a personal access token needs the `workflow` scope):

```sh
git rm -r -q .github/workflows
git mv .github/baked-workflows .github/workflows
git commit -m "Turn on CI" && git push
```

"""


def keep_workflows_aside(baked: Path) -> None:
    """The baked workflows to .github/baked-workflows/, and the step that moves them in to the README."""
    if not (baked / WORKFLOWS).is_dir():
        return
    (baked / WORKFLOWS).rename(baked / PARKED)
    readme = baked / "README.md"
    text = readme.read_text()
    first_section = text.index("\n## ") + 1
    readme.write_text(text[:first_section] + FIRST_STEP + text[first_section:])


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
        keep_workflows_aside(baked)
        for path in REPOSITORY.iterdir():
            if path.name not in (".git", ".github"):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        for path in (REPOSITORY / ".github").glob("*"):
            if path.name != WORKFLOWS.name:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        for path in baked.iterdir():
            if path.name == ".github":
                (REPOSITORY / ".github").mkdir(exist_ok=True)
                for item in path.iterdir():
                    shutil.move(str(item), REPOSITORY / ".github" / item.name)
            else:
                shutil.move(str(path), REPOSITORY / path.name)

    if options.commit:
        subprocess.run(["git", "add", "--all"], cwd=REPOSITORY, check=True)
        subprocess.run(
            ["git", "commit", "--quiet", "-m", f"Bake {options.name} from the template"], cwd=REPOSITORY, check=True
        )
    print(f"The repository now holds the baked project {baked.name}.")


if __name__ == "__main__":
    main()
