"""The hooks: bad answers are refused before anything is written; secrets are fresh and stay in env files;
options that are off leave no trace."""

import json
import os
import pty
import re
import select
import shlex
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from support import TEMPLATE, bake, clean_env, env_file, require, run, tool

SECRET_RE = r"[A-Za-z0-9][A-Za-z0-9_-]+"


def without_network() -> tuple[list[str], str]:
    """The prefix that runs a command in a network namespace of its own (no network at all), and why none works.
    Root unshares the network directly; another user inside a user namespace of its own, where the kernel allows
    that (Ubuntu 24.04's AppArmor forbids it by default: the template's CI lifts that, .github/workflows/ci.yml)."""
    errors = []
    for prefix in (["unshare", "--net"], ["unshare", "--map-root-user", "--net"]):
        try:
            probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=30)
        except FileNotFoundError:
            return [], "unshare (util-linux) is not installed"
        if probe.returncode == 0:
            return [*prefix, "--"], ""
        errors.append(f"{' '.join(prefix)}: {probe.stderr.strip()}")
    return [], "cannot make a network namespace to cut the network: " + "; ".join(errors)


def cookiecutter_cli(output: Path, *answers: str, offline: list[str] | None = None) -> subprocess.CompletedProcess:
    command = [tool("cookiecutter"), "--no-input", str(TEMPLATE), "--output-dir", str(output), *answers]
    return subprocess.run([*(offline or []), *command], capture_output=True, text=True, timeout=120, env=clean_env())


BAD_ANSWERS = [
    (["project_name="], "project_name is empty"),
    (["project_name=   "], "project_name is empty"),
    (["project_slug=my app"], "'my app' is not a lowercase Python identifier"),
    (["project_slug=MyApp"], "'MyApp' is not a lowercase Python identifier"),
    (["project_slug=1st_app"], "'1st_app' is not a lowercase Python identifier"),
    (["project_slug=my-app"], "'my-app' is not a lowercase Python identifier"),
    (["project_slug=django"], "'django' would shadow"),
    (["project_slug=celery"], "'celery' would shadow"),
    (["project_slug=config"], "'config' would shadow"),
    (["project_slug=test"], "'test' would shadow"),
    (["project_slug=users"], "'users' would shadow"),
    (["project_slug=json"], "'json' would shadow"),
    (["project_slug=class"], "'class' would shadow"),
    (['project_name=The "Best" Shop'], "contains a double quote"),
    (["email=not-an-email"], "'not-an-email' is not an email address"),
    (["email=me@localhost"], "is not an email address"),
    (["domain_name=https://example.com"], "'https://example.com' is not a domain name"),
    (["domain_name=example.com:8000"], "is not a domain name"),
    (["domain_name=exa mple.com"], "is not a domain name"),
    (["domain_name=exa_mple.com"], "is not a domain name"),
    (["use_celery=yes"], "use_celery 'yes' is not one of y, n"),
    (["key_value_store=none", "use_celery=y"], "use_celery=y needs a key-value store"),
    (["key_value_store=none", "use_celery=y", "email=x"], "answer key_value_store=valkey (or redis), or use_celery=n"),
    (["python_version=3.15", "django_version=5.2"], "python_version=3.15 needs django_version=6.1"),
]


@pytest.mark.parametrize("answers, message", BAD_ANSWERS, ids=[" ".join(a) for a, _ in BAD_ANSWERS])
def test_bad_answers_are_refused_with_a_message_and_nothing_written(tmp_path, answers, message):
    result = cookiecutter_cli(tmp_path, *answers)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Nothing was written" in result.stderr
    assert list(tmp_path.iterdir()) == [], "a half-made project was left behind"


@pytest.mark.parametrize(
    "answer",
    [
        "python_version=3.9",
        "django_version=4.2",
        "postgres_version=9",
        "key_value_store=memcached",
        "ci=jenkins",
        "username_type=phone",
        "use_sentry=yes",
        "media_storage=ftp",
    ],
)
def test_answers_outside_the_choices_are_refused(tmp_path, answer):
    """Cookiecutter itself checks choices given on the command line (the pre-gen hook checks them again)."""
    key, _, value = answer.partition("=")
    result = cookiecutter_cli(tmp_path, answer)
    assert result.returncode != 0
    assert f"{value} provided for choice variable {key}" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_several_problems_are_reported_together(tmp_path):
    result = cookiecutter_cli(tmp_path, "email=nope", "domain_name=nope nope", "key_value_store=none", "use_celery=y")
    assert result.returncode != 0
    for message in ("is not an email address", "is not a domain name", "use_celery=y needs a key-value store"):
        assert message in result.stderr


@pytest.mark.parametrize("name", ["Admin", "Auth", "Contenttypes", "Sessions", "Messages"])
def test_a_name_that_is_the_label_of_an_installed_django_app_is_refused(tmp_path, name):
    """The project's app would share its label with django.contrib.<name>: Django would never start."""
    result = cookiecutter_cli(tmp_path, f"project_name={name}")
    assert result.returncode != 0
    assert f"project_slug '{name.lower()}' is the label of django.contrib.{name.lower()}" in result.stderr
    assert "Application labels aren't unique" in result.stderr
    assert list(tmp_path.iterdir()) == []


CELERY_LOCK = TEMPLATE / "{{cookiecutter.project_slug}}/.locks/py3.14-django6.1-celery.lock"
LOCKED = sorted(set(re.findall(r'^\[\[package\]\]\nname = "([^"]+)"', CELERY_LOCK.read_text(), re.M)) - {"lockproject"})


def test_every_package_of_the_chosen_lock_is_refused_as_a_name(cookies, capsys):
    """A project named like one of its locked dependencies makes `uv sync` fail ("missing 'source' field"):
    each such name, spelt as a package name (- _ . and case do not count), is refused at bake time."""
    assert len(LOCKED) > 20 and "vine" in LOCKED and "typing-extensions" in LOCKED
    answers = {"python_version": "3.14", "django_version": "6.1", "key_value_store": "valkey", "use_celery": "y"}
    for package in LOCKED:
        result = cookies.bake(extra_context={**answers, "project_slug": package.replace("-", "_")})
        assert result.exit_code == 1, f"{package} was accepted as the project's name"
        message = capsys.readouterr().err
        assert "Cannot bake this project" in message, package
        assert f"the package '{package}' that the project depends on" in message or "would shadow" in message


def test_a_package_name_is_refused_only_where_that_package_is_locked(cookies, capsys):
    refused = cookies.bake(extra_context={"project_name": "Vine", "key_value_store": "valkey", "use_celery": "y"})
    assert refused.exit_code == 1
    assert "project_slug 'vine' is the name of the package 'vine'" in capsys.readouterr().err
    project = bake(cookies, project_name="Vine", key_value_store="none", use_celery="n")  # no Celery, no vine
    assert 'name = "vine"' in (project / "uv.lock").read_text()


def test_the_domain_is_trimmed_and_lower_cased_once_and_written_so_everywhere(cookies):
    project = bake(cookies, domain_name=" Example.ORG ", deploy_target="compose+kubernetes")
    values = env_file(project / ".envs/prod.env")
    assert values["ALLOWED_HOSTS"] == "example.org"
    assert values["CSRF_TRUSTED_ORIGINS"] == "https://example.org"
    assert '"ALLOWED_HOSTS": "example.org"' in (project / "tests/test_settings.py").read_text()
    assert "ALLOWED_HOSTS=example.org" in (project / "k8s/overlays/production/kustomization.yaml").read_text()
    assert files_mentioning(project, "example.org ") == [] and files_mentioning(project, "// example") == []
    assert not [p for p in project.rglob("*") if p.is_file() and "Example.ORG" in p.read_text(errors="ignore")]


def interactive(output: Path, typed: list[str], command: list[str] | None = None) -> str:
    """Run cookiecutter as a person does, in a terminal, typing these lines; return all it showed."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        command or [tool("cookiecutter"), str(TEMPLATE), "--output-dir", str(output)],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=clean_env(COLUMNS="200"),
        close_fds=True,
    )
    os.close(follower)
    os.write(leader, "".join(f"{line}\n" for line in typed).encode())
    shown, deadline = b"", time.monotonic() + 120
    while time.monotonic() < deadline:
        if select.select([leader], [], [], 1)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closes when cookiecutter exits
                break
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    process.wait(timeout=30)
    os.close(leader)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode(errors="replace")).replace("\r", "")


# The questions: name, slug, description, author, email, domain, Python, Django, PostgreSQL, key-value store,
# Celery, sign-in, Sentry, CI, deployment, then every one added since (frontend...), license last: as many as
# cookiecutter.json has keys without a leading underscore. An empty line takes the default.
ASKED = len([key for key in json.loads((TEMPLATE / "cookiecutter.json").read_text()) if not key.startswith("_")])
DEFAULTS = [""] * ASKED


def test_a_refused_interactive_answer_ends_with_the_message_alone(tmp_path):
    shown = interactive(tmp_path, ["Messages", *DEFAULTS[1:]])
    assert "Traceback" not in shown and "Hook script failed" not in shown, shown
    lines = [line for line in shown.splitlines() if line.strip()]
    assert lines[-3].startswith("  - project_slug 'messages' is the label of django.contrib.messages"), shown
    assert lines[-2] == "Nothing was written. To try again with your answers, correct the ones above in:"
    assert lines[-1].endswith(f"{TEMPLATE} --output-dir {tmp_path} project_name=Messages"), lines[-1]
    assert list(tmp_path.iterdir()) == []


def retry(shown: str) -> list[str]:
    """The command a refusal printed (its last line), run with the template's own cookiecutter."""
    command = shlex.split(shown.strip().splitlines()[-1])
    program = 2 if command[0] == "uvx" else 1  # `uvx cookiecutter==2.7.1` where cookiecutter is not on PATH
    assert command[program - 1].startswith("cookiecutter") or command[0] == "uvx", command
    return [tool("cookiecutter"), *command[program:]]


def test_every_problem_is_reported_at_once_with_the_command_that_retries_them(tmp_path):
    """Issue 21.7: all the problems in one refusal, and a command with the answers given: correcting the bad
    values in it bakes, with the good ones kept (the slug follows the corrected name, as its default would)."""
    result = cookiecutter_cli(
        tmp_path, "project_name=Messages", "email=nope", "author_name=Ada", "key_value_store=none", "use_celery=y"
    )
    assert result.returncode != 0 and list(tmp_path.iterdir()) == []
    for message in ("'messages' is the label of", "'nope' is not an email address", "needs a key-value store"):
        assert message in result.stderr, result.stderr
    command = retry(result.stderr)
    assert "--no-input" in command and str(tmp_path) in command
    assert {"project_name=Messages", "email=nope", "author_name=Ada", "use_celery=y"} <= set(command), command
    assert not [arg for arg in command if arg.startswith("project_slug=")], "the slug was the name's default"
    fixed = {"project_name=Messages": "project_name=Catalogue", "email=nope": "email=ada@example.com"}
    fixed["use_celery=y"] = "use_celery=n"
    baked = run([fixed.get(arg, arg) for arg in command], env=clean_env(), timeout=120)
    assert "Next steps" in baked.stdout
    pyproject = tomllib.loads((tmp_path / "catalogue/pyproject.toml").read_text())
    assert pyproject["project"]["authors"] == [{"name": "Ada", "email": "ada@example.com"}]
    assert not (tmp_path / "catalogue/config/celery.py").exists()


def test_at_a_terminal_the_typed_answers_are_checked_before_the_choices(tmp_path):
    """Issue 21.7: a bad name or email is refused right after the six typed answers, not after all the
    questions; the command printed asks again with the answers given as the defaults (Enter keeps them)."""
    shown = interactive(tmp_path, ['The "Best" Shop', "", "", "Ada", "nope", ""])
    assert f"[6/{ASKED}]" in shown and f"[7/{ASKED}]" not in shown, shown
    assert "contains a double quote" in shown and "'nope' is not an email address" in shown, shown
    assert list(tmp_path.iterdir()) == []
    command = retry(shown)
    assert "--no-input" not in command and "author_name=Ada" in command, command
    command = [{"email=nope": "email=ada@example.com"}.get(arg, arg) for arg in command]
    command = [arg.replace('"Best" ', "") if arg.startswith("project_name=") else arg for arg in command]
    again = interactive(tmp_path, DEFAULTS, command=command)
    assert "(The Shop)" in again and "(ada@example.com)" in again, again  # offered as the defaults
    pyproject = tomllib.loads((tmp_path / "the_shop/pyproject.toml").read_text())
    assert pyproject["project"]["authors"] == [{"name": "Ada", "email": "ada@example.com"}]


def test_the_celery_question_is_yes_or_no_and_follows_the_store(tmp_path):
    """After "none" for the store, the Celery question offers n, and taking the default bakes."""
    typed = DEFAULTS.copy()
    typed[0], typed[9] = "No Store", "3"  # key_value_store: 3 - none
    shown = interactive(tmp_path, typed)
    question = shown.split("Celery worker for background tasks?")[1].split(f"[12/{ASKED}]")[0]
    assert question.strip() == "y or n (y needs a key-value store) (n):", question  # typed, not numbered
    assert (tmp_path / "no_store" / "manage.py").exists(), shown
    assert files_mentioning(tmp_path / "no_store", "celery") == []


def test_without_a_store_celery_defaults_to_no(tmp_path):
    result = cookiecutter_cli(tmp_path, "project_name=Plain", "key_value_store=none")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "plain" / "config/celery.py").exists()
    defaults = cookiecutter_cli(tmp_path, "project_name=With Store")
    assert defaults.returncode == 0 and (tmp_path / "with_store" / "config/celery.py").exists()


def test_generated_env_files_are_created_owner_only(tmp_path):
    """Created with mode 0600, so their secrets are never readable by others, not even for a moment between
    the write and a chmod: the system calls that create them show the mode they were created with."""
    strace = shutil.which("strace")
    require(strace is not None, "strace is not installed: cannot watch how .envs/prod.env is created")
    trace = tmp_path / "trace"
    command = [tool("cookiecutter"), "--no-input", str(TEMPLATE), "--output-dir", str(tmp_path / "out")]
    run([strace, "-f", "-qq", "-e", "trace=open,openat,creat", "-o", str(trace), *command], env=clean_env())
    creations = [line for line in trace.read_text().splitlines() if re.search(r'/\.envs/[^/"]+\.env", O_\w*', line)]
    # dev.env is the committed development file, without secrets; the others are git-ignored secrets.
    creations = [line for line in creations if "O_CREAT" in line and '/.envs/dev.env"' not in line]
    assert any('/.envs/prod.env"' in line for line in creations), "prod.env was not created with open(O_CREAT)"
    for line in creations:
        mode = int(re.search(r"O_CREAT[^)]*, (0[0-7]+)\)", line).group(1), 8)
        assert mode & 0o077 == 0, f"created readable by others: {line}"
    for env in set((tmp_path / "out/my_django_project/.envs").glob("*.env")) - {
        tmp_path / "out/my_django_project/.envs/dev.env"
    }:
        assert env.stat().st_mode & 0o777 == 0o600, env.name


def test_baked_files_take_the_normalised_domain():
    """Template files must use __domain_name (trimmed, lower-cased), never the raw answer."""
    raw = [
        str(path.relative_to(TEMPLATE))
        for path in (TEMPLATE / "{{cookiecutter.project_slug}}").rglob("*")
        if path.is_file() and "cookiecutter.domain_name" in path.read_text(errors="ignore")
    ]
    assert raw == [], "use cookiecutter.__domain_name in these files"


def test_baking_needs_no_network(tmp_path):
    offline, why_not = without_network()
    require(bool(offline), why_not)
    result = cookiecutter_cli(tmp_path, "project_name=Offline Shop", offline=offline)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "offline_shop" / "uv.lock").exists()
    assert "Next steps" in result.stdout


GENERATED = {"SECRET_KEY", "POSTGRES_PASSWORD", "APP_DB_PASSWORD", "REDIS_PASSWORD", "BACKUP_AUTH_KEY"}


def generated_secrets(project: Path) -> dict[str, str]:
    """The secrets of the env files the bake wrote: the app's (prod.env), the database's and the store's."""
    values = {}
    for path in project.glob(".envs/*.env"):
        values |= env_file(path)
    return {key: values[key] for key in GENERATED if key in values}


def test_each_bake_generates_different_strong_secrets(cookies):
    first = generated_secrets(bake(cookies, project_name="First"))
    second = generated_secrets(bake(cookies, project_name="Second"))
    assert set(first) == GENERATED
    for key in first:
        assert first[key] != second[key], f"{key} is the same in two bakes"
        # Survives shells, Compose interpolation, .env parsing and URLs: no $ ' " \ ` # @ : / %
        assert re.fullmatch(SECRET_RE, first[key]), f"{key}={first[key]!r} has characters that need quoting"
        assert len(first[key]) >= 32
    assert len(first["SECRET_KEY"]) >= 50  # Django's check --deploy wants 50+


def test_urls_in_prod_env_carry_the_generated_passwords(cookies):
    project = bake(cookies, project_name="Urls")
    values, db, store = (env_file(project / f".envs/{name}.env") for name in ("prod", "db", "store"))
    # The app connects as its own role, with the password the database creates it with.
    assert values["DATABASE_URL"] == f"postgres://urls:{db['APP_DB_PASSWORD']}@db:5432/urls"
    assert db["APP_DB_USER"] == "urls" and db["POSTGRES_USER"] == "postgres"
    assert values["REDIS_URL"] == f"redis://:{store['REDIS_PASSWORD']}@valkey:6379/0"  # Valkey, the default
    # Each service's own secrets only: the app never sees the superuser's password, the others no SECRET_KEY.
    assert "POSTGRES_PASSWORD" not in values and "REDIS_PASSWORD" not in values
    assert set(db) == {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "APP_DB_USER", "APP_DB_PASSWORD"}
    assert set(store) == {"REDIS_PASSWORD"}
    for each in (values, db, store):
        assert not any("<" in value for value in each.values()), "a placeholder was left unfilled"


def test_secrets_appear_only_in_the_git_ignored_prod_env(cookies):
    project = bake(cookies, project_name="Secret Keeper")
    found = generated_secrets(project)
    run(["git", "init", "-q"], cwd=project)
    run(["git", "add", "-A"], cwd=project)
    tracked = run(["git", "ls-files"], cwd=project).stdout.split()
    generated = [f".envs/{name}.env" for name in ("prod", "db", "store", "backup")]
    assert not set(generated) & set(tracked)
    assert ".envs/prod.env.example" in tracked and ".envs/dev.env" in tracked
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts and str(path.relative_to(project)) not in generated:
            text = path.read_text(errors="ignore")
            for key, secret in found.items():
                assert secret not in text, f"{key} leaked into {path.relative_to(project)}"
    ignored = run(["git", "check-ignore", ".envs/prod.env"], cwd=project, check=False)
    assert ignored.returncode == 0
    docker_ignored = (project / ".dockerignore").read_text().splitlines()
    # A deny-list that leaves out every env file and lets nothing back in.
    assert {".env", ".env.*", "**/.env", "**/.env.*", ".envs/"} <= set(docker_ignored)
    assert not any(line.startswith("!") for line in docker_ignored)


def test_the_edge_gets_its_own_env_file_with_the_domain_and_no_secret(cookies):
    """compose.prod.yaml's edge reads .envs/edge.env alone: the baked domain and contact, Let's Encrypt, and none
    of the app's variables; written like the other env files (owner-only, git-ignored, left alone by cruft)."""
    project = bake(cookies, project_name="Edge Env", domain_name="Shop.Example.ORG", email="ops@example.org")
    edge = env_file(project / ".envs/edge.env")
    assert edge == {
        "DOMAINS": "shop.example.org",
        "ACME_EMAIL": "ops@example.org",
        "ACME_CA": "https://acme-v02.api.letsencrypt.org/directory",
    }
    assert (project / ".envs/edge.env").stat().st_mode & 0o777 == 0o600
    live = yaml.safe_load((project / "compose.prod.yaml").read_text())["services"]
    assert live["edge"]["env_file"] == ".envs/edge.env"
    assert ".envs/edge.env" in tomllib.loads((project / "pyproject.toml").read_text())["tool"]["cruft"]["skip"]
    run(["git", "init", "-q"], cwd=project)
    assert run(["git", "check-ignore", ".envs/edge.env"], cwd=project, check=False).returncode == 0


def test_the_off_site_settings_are_written_empty_owner_only_and_git_ignored(cookies):
    """.envs/offsite.env will hold the storage's keys: written from its example with every setting empty
    (off-site copies off until the user fills it in), owner-only, and never committed."""
    project = bake(cookies, project_name="Offsite Keeper")
    offsite = project / ".envs/offsite.env"
    assert offsite.stat().st_mode & 0o777 == 0o600
    lines = [line for line in offsite.read_text().splitlines() if line and not line.startswith("#")]
    assert dict(line.split("=", 1) for line in lines) == dict.fromkeys(
        [
            "S3_BUCKET",
            "S3_PREFIX",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL",
        ],
        "",
    )
    run(["git", "init", "-q"], cwd=project)
    run(["git", "add", "-A"], cwd=project)
    tracked = run(["git", "ls-files"], cwd=project).stdout.split()
    assert ".envs/offsite.env.example" in tracked and ".envs/offsite.env" not in tracked


def hook_functions() -> dict:
    """The post-gen hook's functions, loaded from its source (it is a Jinja template; its placeholders sit in
    strings, so the source parses as it is)."""
    source = (TEMPLATE / "hooks/post_gen_project.py").read_text().split("\ndef main()")[0]
    namespace: dict = {}
    exec(compile(source, "post_gen_project.py", "exec"), namespace)
    return namespace


def test_the_hooks_x25519_gives_rfc_7748s_keys():
    """The backups' key pair is made by the hook's own X25519 (no package to lean on at bake time): RFC 7748's
    section 6.1 vectors, both public keys and the shared secret. (The e2e tests check a baked pair with age.)"""
    x25519 = hook_functions()["x25519"]
    base = (9).to_bytes(32, "little")
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    assert x25519(alice, base).hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    assert x25519(bob, base).hex() == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    assert x25519(alice, x25519(bob, base)).hex() == x25519(bob, x25519(alice, base)).hex() == shared


def test_the_backups_key_pair_is_fresh_and_only_its_public_half_goes_with_the_server_files(cookies):
    """backup-identity.txt (the private key that decrypts the backups) is written owner-only beside the code for
    the user to move into a password manager: never tracked, never in .envs/ (which goes to the server). The
    server's backup.env holds the matching public key and the sealing key."""
    project = bake(cookies, project_name="Key Keeper")
    identity_file = project / "backup-identity.txt"
    assert identity_file.stat().st_mode & 0o777 == 0o600
    text = identity_file.read_text()
    identity = re.search(r"(?m)^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}$", text).group(0)
    backup = env_file(project / ".envs/backup.env")
    assert set(backup) == {"BACKUP_RECIPIENT", "BACKUP_AUTH_KEY"}
    assert (project / ".envs/backup.env").stat().st_mode & 0o777 == 0o600
    assert re.fullmatch(r"age1[02-9ac-hj-np-z]{58}", backup["BACKUP_RECIPIENT"])
    assert f"# public key: {backup['BACKUP_RECIPIENT']}" in text
    other = bake(cookies, project_name="Key Keeper Two")
    assert identity not in (other / "backup-identity.txt").read_text()
    assert env_file(other / ".envs/backup.env")["BACKUP_RECIPIENT"] != backup["BACKUP_RECIPIENT"]
    run(["git", "init", "-q"], cwd=project)
    run(["git", "add", "-A"], cwd=project)
    tracked = run(["git", "ls-files"], cwd=project).stdout.split()
    assert "backup-identity.txt" not in tracked and ".envs/backup.env" not in tracked
    assert ".envs/backup.env.example" in tracked
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts and path != identity_file:
            assert identity not in path.read_text(errors="ignore"), f"the private key is in {path}"
    assert "backup-identity.txt" in tomllib.loads((project / "pyproject.toml").read_text())["tool"]["cruft"]["skip"]


def files_mentioning(project: Path, word: str) -> list[str]:
    hits = []
    for path in project.rglob("*"):
        relative = str(path.relative_to(project))
        if word in relative.lower():
            hits.append(relative)
        elif path.is_file() and word in path.read_text(errors="ignore").lower():
            hits.append(relative)
    return hits


def test_without_celery_nothing_of_celery_remains(cookies):
    project = bake(cookies, key_value_store="valkey", use_celery="n")
    assert files_mentioning(project, "celery") == []
    assert files_mentioning(project, "valkey"), "valkey was kept, so it should still be configured"


@pytest.mark.parametrize("store, other", [("valkey", "redis"), ("redis", "valkey")])
def test_the_chosen_store_is_the_one_configured(cookies, store, other):
    """Valkey and Redis speak one protocol (redis:// URLs, redis-py), but the services, images and texts
    name the one chosen, and nothing of the other."""
    project = bake(cookies, key_value_store=store, use_celery="y", deploy_target="compose+kubernetes")
    assert files_mentioning(project, other if other == "valkey" else "redis:8") == []
    for name in ("compose.yaml", "compose.prod.yaml"):
        services = yaml.safe_load((project / name).read_text())["services"]
        assert services[store]["image"] == {"valkey": "valkey/valkey:9-alpine", "redis": "redis:8-alpine"}[store]
        assert other not in services
    assert f"@{store}:6379/0" in (project / ".envs/prod.env").read_text()


def test_without_a_store_nothing_of_it_remains(cookies):
    project = bake(cookies, key_value_store="none", use_celery="n")
    for word in ("redis", "valkey", "celery"):
        assert files_mentioning(project, word) == [], word
    assert "REDIS" not in (project / ".envs/prod.env").read_text()


@pytest.mark.parametrize(
    "ci, kept, gone",
    [
        ("github", ".github/workflows/ci.yml", ".gitlab-ci.yml"),
        ("gitlab", ".gitlab-ci.yml", ".github"),
        ("none", None, ".github"),
    ],
)
def test_only_the_chosen_ci_remains(cookies, ci, kept, gone):
    project = bake(cookies, ci=ci)
    if kept:
        assert (project / kept).is_file()
    assert not (project / gone).exists()
    if ci == "none":
        assert not (project / ".gitlab-ci.yml").exists()


def test_license_follows_the_answer(cookies):
    assert "MIT License" in (bake(cookies, open_source_license="MIT") / "LICENSE").read_text()
    assert not (bake(cookies, open_source_license="Not open source") / "LICENSE").exists()


def files_naming(project: Path, pattern: str) -> list[str]:
    """Files whose path or text has a match of the regular expression (case-insensitive)."""
    found = re.compile(pattern, re.IGNORECASE)
    return [
        str(path.relative_to(project))
        for path in project.rglob("*")
        if found.search(str(path.relative_to(project)))
        or (path.is_file() and found.search(path.read_text(errors="ignore")))
    ]


def test_without_celery_there_is_no_beat(cookies):
    """Beat is Celery's: without it no service, manifest, setting, variable or README line of it (gunicorn's
    "heartbeat" is another word)."""
    project = bake(cookies, key_value_store="valkey", use_celery="n", deploy_target="compose+kubernetes")
    assert files_naming(project, r"\bbeat\b|celerybeat|CLEAR_SESSIONS|clearsessions") == []
    with_celery = bake(cookies, project_name="Beating", use_celery="y", deploy_target="compose+kubernetes")
    assert (with_celery / "k8s/base/beat-deployment.yaml").is_file()
    assert "beat" in yaml.safe_load((with_celery / "compose.yaml").read_text())["services"]


def test_sentry_is_off_by_default_and_leaves_no_trace(cookies):
    project = bake(cookies, deploy_target="compose+kubernetes")
    assert files_mentioning(project, "sentry") == []


@pytest.mark.parametrize("celery, extras", [("y", "celery,django"), ("n", "django")])
def test_sentry_when_asked_for(cookies, celery, extras):
    store = "valkey" if celery == "y" else "none"
    project = bake(cookies, project_name=f"Reported {celery}", use_sentry="y", key_value_store=store, use_celery=celery)
    pyproject = (project / "pyproject.toml").read_text()
    assert f'"sentry-sdk[{extras}]==' in pyproject
    assert re.search(r'^name = "sentry-sdk"$', (project / "uv.lock").read_text(), re.M)
    # What the settings start is run, not read: the SDK's integrations with a DSN set (tests/test_baked_venv.py) and
    # its options, without personal data (the baked tests/test_settings.py, run there and in the dev stack).
    assert "## Error reports" in (project / "README.md").read_text()
    assert "SENTRY_DSN=" in (project / ".envs/dev.env").read_text()
    assert "SENTRY_DSN=" in (project / ".envs/prod.env.example").read_text()


def test_the_lock_file_matches_the_answers(cookies):
    project = bake(
        cookies,
        project_name="Lock Check",
        python_version="3.12",
        django_version="6.1",
        key_value_store="none",
        use_celery="n",
    )
    lock = (project / "uv.lock").read_text()
    assert 'requires-python = ">=3.12"' in lock
    assert 'name = "lock-check"' in lock
    assert re.search(r'name = "django"\nversion = "6\.1\.', lock)
    assert not (project / ".locks").exists()


def test_the_sentry_lock_file_is_the_one_installed(cookies):
    plain = bake(cookies, project_name="Lock Plain", python_version="3.13", django_version="5.2")
    reported = bake(cookies, project_name="Lock Reported", python_version="3.13", django_version="5.2", use_sentry="y")
    assert 'name = "sentry-sdk"' not in (plain / "uv.lock").read_text()
    assert 'name = "sentry-sdk"' in (reported / "uv.lock").read_text()


# ---- API (issue 24): api=none leaves no trace; a framework brings its own files and lock, not the other's.


def test_without_an_api_nothing_of_it_is_left(cookies):
    project = bake(cookies, project_name="No Api", deploy_target="compose+kubernetes")
    # allauth itself is in every bake (accounts); its headless part comes with an API.
    pattern = (
        r"allauth\.headless|/_allauth|corsheaders|CORS_|rest_framework|spectacular|ninja|API_THROTTLE|/api/|JsonErrors"
        r"|X-Session"
    )
    assert files_naming(project, pattern) == []
    assert not (project / "no_api/migrations/0004_document_owner.py").exists()
    assert "owner" not in (project / "no_api/models.py").read_text()


@pytest.mark.parametrize("api, other", [("drf", "ninja"), ("ninja", "drf")])
def test_an_api_brings_its_framework_only(cookies, api, other):
    project = bake(cookies, project_name=f"With Api {api}", api=api, python_version="3.13", django_version="5.2")
    app = project / f"with_api_{api}"
    assert (app / f"api/{api}_api.py").is_file() and not (app / f"api/{other}_api.py").exists()
    assert (app / "migrations/0004_document_owner.py").is_file() and (project / "tests/test_api.py").is_file()
    lock = (project / "uv.lock").read_text()
    wanted = {"drf": "djangorestframework", "ninja": "django-ninja"}
    locked = set(re.findall(r'^name = "([^"]+)"$', lock, re.M))
    assert wanted[api] in locked and wanted[other] not in locked
    assert {"django-allauth", "django-cors-headers"} <= locked
    assert files_naming(project, other if other == "ninja" else r"rest_framework|spectacular") == []
    assert f"# API ({api})" in (project / "config/settings.py").read_text()


# ---- Media in object storage (issue 26): s3 leaves no media volume, route or archive; local is as before.


def test_media_in_a_bucket_has_no_volume_route_or_media_archive(cookies):
    project = bake(cookies, project_name="Bucket", media_storage="s3", python_version="3.13", django_version="5.2")
    compose = yaml.safe_load((project / "compose.prod.yaml").read_text())
    assert "media" not in compose["volumes"]
    for name, service in compose["services"].items():
        assert not [v for v in service.get("volumes", []) if str(v).startswith("media:")], name
    assert "location /media/" not in (project / "nginx/nginx.conf").read_text()
    assert '"BACKEND": "bucket.storage.MediaStorage"' in (project / "config/settings.py").read_text()
    assert (project / "bucket/storage.py").is_file()
    assert not (project / "bucket/management/commands/restore_media.py").exists()
    assert not (project / "tests/test_restore_media.py").exists()
    backup = (project / "backup.sh").read_text()
    assert "tar -czf" not in backup and "media: not in this backup" in backup
    assert "media-$1.tar.gz.age" not in (project / "offsite.sh").read_text()
    assert "_media stage" not in (project / "live").read_text()
    locked = set(re.findall(r'^name = "([^"]+)"$', (project / "uv.lock").read_text(), re.M))
    assert {"django-storages", "boto3"} <= locked
    assert "MEDIA_S3_BUCKET=" in (project / ".envs/prod.env").read_text()


def test_local_media_keeps_its_volume_and_has_no_bucket(cookies):
    project = bake(cookies, project_name="Volume", python_version="3.13", django_version="5.2")
    assert "media" in yaml.safe_load((project / "compose.prod.yaml").read_text())["volumes"]
    assert "location /media/" in (project / "nginx/nginx.conf").read_text()
    assert (project / "volume/management/commands/restore_media.py").is_file()
    assert files_naming(project, r"MEDIA_S3|django-storages|storages\.backends|boto3|MediaStorage") == []
