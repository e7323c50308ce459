"""pre-commit: frontend/package-lock.json holds what frontend/package.json asks for (`npm ci`, in the Dockerfile's
assets stage, refuses a lock out of step with it). Standard library only: no Node on your machine."""

import json
import sys
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
KINDS = ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies")
FIX = (
    "Update the lock in the node image (README, Frontend):\n"
    '  docker run --rm -v "$PWD/frontend:/w" -w /w -u "$(id -u):$(id -g)" -e npm_config_cache=/tmp/npm '
    "node:{{ cookiecutter._versions.node }}-slim sh -c 'npm install --no-audit --no-fund && rm -rf node_modules'"
)


def main() -> int:
    wanted = json.loads((FOLDER / "package.json").read_text())
    locked = json.loads((FOLDER / "package-lock.json").read_text())["packages"][""]
    differ = [kind for kind in KINDS if wanted.get(kind, {}) != locked.get(kind, {})]
    if differ:
        print(f"frontend/package-lock.json does not match package.json ({', '.join(differ)}). {FIX}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
