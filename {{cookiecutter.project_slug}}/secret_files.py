"""Secrets from files: NAME_FILE=/run/secrets/x sets NAME to that file's content (Docker Swarm's secrets).

The official postgres image reads POSTGRES_PASSWORD_FILE the same way; this gives the app the same
contract for any variable (SECRET_KEY_FILE, DATABASE_URL_FILE, ...), so compose.swarm.yaml keeps the
values out of the service definitions that every node and `docker service inspect` can see.

A NAME_FILE counts when it names a file in SECRET_FILES_DIR (/run/secrets, where Docker and Compose mount
secrets) and NAME is unset or empty (the stack file empties the value it read from the env file); a NAME
with a value of its own wins. Other *_FILE variables belong to other tools (SSL_CERT_FILE,
TF_CLI_CONFIG_FILE in a developer's shell...) and are left alone. One trailing newline is stripped
(`echo x > file`). A secret file that cannot be read stops the process with a message naming both.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path


class SecretFileError(Exception):
    """A NAME_FILE names a secret file that cannot be read."""


def load_secret_files(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Set NAME from NAME_FILE for every such pair in environ (os.environ by default); the names set."""
    env = os.environ if environ is None else environ
    folder = Path(env.get("SECRET_FILES_DIR") or "/run/secrets")
    loaded = []
    for key in sorted(env):
        name = key.removesuffix("_FILE")
        if name in (key, "") or env.get(name, "").strip() or Path(env[key]).parent != folder:
            continue
        try:
            value = Path(env[key]).read_text(encoding="utf-8")
        except OSError as exc:
            raise SecretFileError(
                f"{key}={env[key]}: cannot read it ({exc.strerror}). Create the secret and give it to "
                f'this service (README, "Docker Swarm"), or set {name} instead.'
            ) from None
        env[name] = value.removesuffix("\n")
        loaded.append(name)
    return loaded
