"""Docker Swarm's secrets: NAME_FILE sets NAME (secret_files.py), for the settings and wait_entrypoint.py."""

import subprocess
from pathlib import Path

import pytest

from secret_files import SecretFileError, load_secret_files
from tests.test_settings import PRODUCTION, run_python

PROJECT = Path(__file__).resolve().parent.parent


def test_a_file_sets_an_unset_or_empty_variable_without_its_newline(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("s3cret\n")
    (tmp_path / "url").write_text("postgres://u:p@db/x")
    env = {
        "SECRET_FILES_DIR": str(tmp_path),
        "SECRET_KEY_FILE": str(tmp_path / "key"),
        "DATABASE_URL": "",
        "DATABASE_URL_FILE": str(tmp_path / "url"),
    }
    assert load_secret_files(env) == ["DATABASE_URL", "SECRET_KEY"]
    assert env["SECRET_KEY"] == "s3cret" and env["DATABASE_URL"] == "postgres://u:p@db/x"


def test_a_value_given_wins_and_other_tools_files_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("from-file")
    env = {
        "SECRET_FILES_DIR": str(tmp_path),
        "SECRET_KEY": "given",
        "SECRET_KEY_FILE": str(tmp_path / "key"),
        "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
        "TF_CLI_CONFIG_FILE": str(tmp_path / "elsewhere" / "missing"),
    }
    assert load_secret_files(env) == []
    assert env["SECRET_KEY"] == "given" and "SSL_CERT" not in env and "TF_CLI_CONFIG" not in env


def test_a_missing_secret_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SecretFileError, match=r"SECRET_KEY_FILE=.*/gone: cannot read it .*set SECRET_KEY instead"):
        load_secret_files({"SECRET_FILES_DIR": str(tmp_path), "SECRET_KEY_FILE": str(tmp_path / "gone")})


def test_the_settings_read_the_secrets_from_files(tmp_path: Path) -> None:
    """A production start with SECRET_KEY only in a file, as compose.swarm.yaml gives it; a missing file stops it."""
    (tmp_path / "key").write_text("a-long-random-production-key-from-a-docker-secret-0123456789\n")
    environ = {name: value for name, value in PRODUCTION.items() if name != "SECRET_KEY"}
    code = "from django.conf import settings; print(settings.SECRET_KEY)"

    def start(path: Path) -> subprocess.CompletedProcess[str]:
        return run_python(code, **environ, SECRET_FILES_DIR=str(tmp_path), SECRET_KEY_FILE=str(path))

    started = start(tmp_path / "key")
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "a-long-random-production-key-from-a-docker-secret-0123456789"
    refused = start(tmp_path / "missing")
    assert refused.returncode != 0 and "SECRET_KEY_FILE=" in refused.stderr and "cannot read it" in refused.stderr
