"""The tooling around the baked project and the template: pre-commit, Makefile, dependency updates,
`docker compose watch`, cruft updates, and "Use this template"."""

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from support import (
    BIN,
    TEMPLATE,
    bake,
    clean_env,
    free_port,
    lint_env,
    load_yaml,
    postgres_major,
    require_engine,
    run,
    stack_name,
    tool,
)

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(project: Path, *args: str) -> subprocess.CompletedProcess:
    return run(["git", *args], cwd=project, env=clean_env(**GIT_IDENTITY))


def test_make_lint_passes_on_a_fresh_bake_and_pre_commit_refuses_prod_env(cookies):
    """`make lint` right after baking: no git repository yet, nothing installed but uv (the template's own uv
    first on PATH, as a user's would be). The mypy hook runs in the project's locked environment under its Python,
    which uv fetches where the machine lacks it: this one cannot download, so the bake asks for a Python it has."""
    project = bake(cookies, project_name="Hooked", python_version="3.13")
    env = lint_env()
    result = run(["make", "lint"], cwd=project, env=env, timeout=900)
    hooks = (
        "ruff check",
        "ruff format",
        "mypy",
        "djlint",
        "hadolint",
        "shellcheck",
        "check yaml",
        "check yaml (compose tags)",
        "check toml",
    )
    for hook in hooks:
        assert re.search(rf"^{re.escape(hook)}\.+Passed$", result.stdout, re.M), (
            f"{hook} did not pass:\n{result.stdout}"
        )
    assert "keep .envs/prod.env out of git" in result.stdout, "the lint saw the git-ignored secrets"
    git(project, "add", "-f", ".envs/prod.env")
    refused = run(
        [tool("pre-commit"), "run", "no-prod-env", "--files", ".envs/prod.env"], cwd=project, env=env, check=False
    )
    assert refused.returncode != 0
    assert "must not be committed" in refused.stdout


def test_make_lint_fails_and_names_the_files_its_fixers_rewrote(cookies):
    """Issue 21.11: `make lint` lints files git does not track yet, and pre-commit notices a fixer's rewrite only in
    tracked files: it said "Passed" (exit 0) while ruff rewrote a new file. Now each rewritten file is named and the
    run fails; a second run, with nothing left to fix, passes."""
    project = bake(cookies, project_name="Lint Fixes", python_version="3.13")  # a Python here, for mypy's hook
    env = lint_env()
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "baked")
    (project / "reports").mkdir()
    (project / "reports/__init__.py").write_text("TOTAL=1\n")  # untracked; ruff format rewrites it
    result = run(["make", "lint"], cwd=project, env=env, timeout=900, check=False)
    assert result.returncode != 0, result.stdout
    assert "make lint changed these files" in result.stdout and "\n  reports/__init__.py\n" in result.stdout
    assert (project / "reports/__init__.py").read_text() == "TOTAL = 1\n"
    again = run(["make", "lint"], cwd=project, env=env, timeout=900, check=False)
    assert again.returncode == 0 and "make lint changed" not in again.stdout, again.stdout


def makefile_targets(project: Path) -> list[str]:
    # Every .PHONY line, in order (the backup targets have their own).
    lines = re.findall(r"^\.PHONY: (.*)$", (project / "Makefile").read_text(), re.M)
    return [target for line in lines for target in line.split()]


def test_makefile_offers_the_everyday_tasks(cookies):
    project = bake(cookies, project_name="Tasks")
    listed = run(["make", "help"], cwd=project).stdout
    assert run(["make"], cwd=project).stdout == listed, "make alone lists the tasks"
    described = re.findall(r"^  ([a-z-]+) +\S", listed, re.M)
    assert described == makefile_targets(project), "every target is listed, with what it does"
    for target in (
        "up",
        "watch",
        "down",
        "logs",
        "test",
        "shell",
        "migrate",
        "createsuperuser",
        "build-live",
        "deploy",
    ):
        assert f"  {target} " in listed, f"make help does not list {target}"
    # Compose's exit code 130 after Ctrl-C is no error (tests/test_new_app.py presses Ctrl-C).
    watch = "docker compose -f compose.yaml -f compose.watch.yaml watch || [ $? -eq 130 ]"
    assert run(["make", "-n", "watch"], cwd=project).stdout.strip().endswith(watch)
    dry = run(["make", "-n", "build-live", "TAG=1.2.3"], cwd=project).stdout
    assert "docker build --target applayer -t tasks-app:1.2.3 ." in dry
    assert "docker build --target staticlayer -t tasks-static:1.2.3 ." in dry
    deploy = run(["make", "-n", "deploy", "TAG=1.2.3"], cwd=project).stdout.splitlines()
    assert deploy == ["./live deploy"], deploy
    script = (project / "live").read_text()
    deploying = script[script.index("\ndeploy() {") : script.index("\nrelease() {")]
    assert deploying.index("manage.py migrate") < deploying.index("up -d --wait"), "migrations must run first"


@pytest.mark.e2e
def test_makefile_docker_targets_work_on_a_fresh_bake(cookies):
    """The targets a new user types first, right after baking, with no stack running: each works. (`make test`
    and `make build-live` also run in tests/test_e2e.py.)"""
    require_engine()
    project = bake(cookies, project_name=stack_name("Make Targets"), key_value_store="none", use_celery="n")
    ports = {"APP_PORT": free_port(), "NGINX_PORT": free_port(), "DB_PORT": free_port()}
    env = clean_env(**{name: str(port) for name, port in ports.items()})
    # The edge on free ports instead of 80 and 443 (it serves no certificate here: no CA is reachable).
    live_env = clean_env(NGINX_PORT=str(free_port()), HTTP_PORT=str(free_port()), HTTPS_PORT=str(free_port()))

    def make(*args: str, stdin: str = "", environment: dict[str, str] = env) -> str:
        result = subprocess.run(
            ["make", *args], cwd=project, env=environment, input=stdin, capture_output=True, text=True, timeout=900
        )
        assert result.returncode == 0, f"make {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result.stdout + result.stderr

    def running(*files: str) -> list[str]:
        command = ["docker", "compose", *(flag for name in files for flag in ("-f", name)), "ps", "-q"]
        return run(command, cwd=project, env=env).stdout.split()

    try:
        assert "Applying sessions.0001_initial... OK" in make("migrate")
        assert "No changes detected" in make("makemigrations")
        assert "42" in make("shell", stdin="print(6 * 7)\n")
        assert "Superuser creation skipped due to not running in a TTY" in make("createsuperuser")
        make("up")
        assert len(running("compose.yaml")) == 3  # app, db, nginx
        # make logs follows until stopped: its own session, so ending it ends the docker compose under it too
        # (Python's timeout, not GNU timeout, which macOS lacks).
        logs = subprocess.Popen(
            ["make", "logs"], cwd=project, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            shown, _ = logs.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(logs.pid, signal.SIGTERM)
            shown, _ = logs.communicate(timeout=60)
        assert "app-1" in shown and "db-1" in shown, shown[-2000:]
        make("down")
        assert running("compose.yaml") == []

        watch = subprocess.Popen(
            ["make", "watch"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while len(running("compose.yaml", "compose.watch.yaml")) < 3 and time.monotonic() < deadline:
            assert watch.poll() is None, watch.stdout.read().decode(errors="replace")
            time.sleep(2)
        assert len(running("compose.yaml", "compose.watch.yaml")) == 3, "make watch did not start the stack"
        os.killpg(watch.pid, signal.SIGINT)
        watch.wait(timeout=60)
        make("down")

        make("build-live", "TAG=make")
        make("deploy", "TAG=make", environment=live_env)
        live = run(
            ["docker", "compose", "-f", "compose.prod.yaml", "ps", "--format", "{{.Service}} {{.Health}}"],
            cwd=project,
            env=live_env,
        ).stdout
        # Off-site copies are off (.envs/offsite.env empty): no offsite container (its profile is off).
        expected = ["app healthy", "backup healthy", "db healthy", "edge healthy", "nginx healthy"]
        assert sorted(live.splitlines()) == expected, live
    finally:
        for files in (["-f", "compose.yaml", "-f", "compose.watch.yaml"], ["-f", "compose.prod.yaml"]):
            down = ["docker", "compose", *files, "down", "-v", "--rmi", "local", "--timeout", "5"]
            run(down, cwd=project, env=live_env, check=False)
        run(["docker", "rmi", *(f"{project.name}-{image}:make" for image in ("app", "static", "offsite"))], check=False)
        run(["docker", "rmi", f"{project.name}-backup:pg{postgres_major(project)}"], check=False)


def test_the_readme_bakes_its_first_project_beside_the_checkout_not_inside_it(tmp_path):
    """The README's first command, run in a copy of the checkout up to `docker compose up` (tests/test_e2e.py
    runs the stacks): the project lands next to the checkout, which stays as it was."""
    block = re.search(r"```sh\n(.*?)```", (TEMPLATE / "README.md").read_text(), re.S).group(1)
    command = block.splitlines()[0].split("  #")[0].split(" && docker compose up")[0]
    checkout = tmp_path / "template"
    shutil.copytree(TEMPLATE, checkout, ignore=shutil.ignore_patterns(".git", ".venv", "*cache*", "bench"))
    before = sorted(path.name for path in checkout.iterdir())
    env = clean_env(PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    where = run(["bash", "-c", f"set -e; {command}; pwd"], cwd=checkout, env=env, timeout=300).stdout
    assert where.splitlines()[-1] == str(tmp_path / "my_django_project")
    assert (tmp_path / "my_django_project" / "manage.py").is_file()
    assert sorted(path.name for path in checkout.iterdir()) == before, "the bake left files in the checkout"


def test_the_readmes_advice_builds_with_your_uid_and_gid_in_any_shell(cookies, tmp_path):
    """`export UID GID` exported no GID in bash. The advice both READMEs give, run by bash and by sh with a
    stand-in `docker` that prints what Compose would receive."""
    project = bake(cookies, project_name="Ids")
    advice = r"`([^`\n]*\$\(id -g\)[^`\n]*docker compose up[^`\n]*)`"
    commands = re.findall(advice, (project / "README.md").read_text())
    assert commands, "the baked README gives no command that passes your ids"
    assert commands[0] in re.findall(advice, (TEMPLATE / "README.md").read_text()), "the FAQ says otherwise"
    stand_in = tmp_path / "bin" / "docker"
    stand_in.parent.mkdir()
    stand_in.write_text('#!/bin/sh\necho "UID=$UID GID=$GID"\n')
    stand_in.chmod(0o755)
    env = {k: v for k, v in clean_env().items() if k not in ("UID", "GID")}
    env["PATH"] = f"{stand_in.parent}{os.pathsep}{env['PATH']}"
    for shell in ("bash", "sh"):
        shown = run([shell, "-c", commands[0]], cwd=project, env=env).stdout.strip()
        assert shown == f"UID={os.getuid()} GID={os.getgid()}", (shell, commands[0], shown)


def test_dependency_updates_are_configured_for_the_chosen_ci(cookies):
    github = bake(cookies, project_name="Deps Github", ci="github")
    config = yaml.safe_load((github / ".github/dependabot.yml").read_text())
    assert {u["package-ecosystem"] for u in config["updates"]} == {"uv", "docker", "docker-compose", "github-actions"}
    run([tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(github / ".github/dependabot.yml")])
    gitlab = bake(cookies, project_name="Deps Gitlab", ci="gitlab")
    run([tool("check-jsonschema"), "--builtin-schema", "vendor.renovate", str(gitlab / "renovate.json")])
    assert not (github / "renovate.json").exists() and not (gitlab / ".github").exists()


def test_compose_watch_rebuilds_when_dependencies_change(cookies):
    project = bake(cookies, project_name="Watched")
    app = yaml.safe_load((project / "compose.yaml").read_text())["services"]["app"]
    rebuilds = {rule["path"] for rule in app["develop"]["watch"] if rule["action"] == "rebuild"}
    assert rebuilds == {"uv.lock", "pyproject.toml"}


def test_compose_watch_syncs_the_source_but_never_the_secrets(cookies):
    """compose.watch.yaml (merged in tests/test_bake.py, run in tests/test_e2e.py): the source is synced to /app,
    the worker and beat restarted after a sync, and neither the secrets nor the host's virtualenv are ever copied."""
    for celery in ("y", "n"):
        project = bake(
            cookies,
            project_name=f"Synced {celery}",
            key_value_store="valkey" if celery == "y" else "none",
            use_celery=celery,
        )
        services = load_yaml((project / "compose.watch.yaml").read_text())["services"]
        assert set(services) == ({"app", "worker", "beat"} if celery == "y" else {"app"})
        for name, service in services.items():
            assert service["volumes"] == ["media:/srv/media"]
            (rule,) = service["develop"]["watch"]
            assert rule["action"] == ("sync" if name == "app" else "sync+restart")
            assert (rule["path"], rule["target"]) == (".", "/app")
            assert {".envs/", ".venv/", ".env", "live.yaml"} <= set(rule["ignore"])
        dockerignore = (project / ".dockerignore").read_text().splitlines()
        assert {".envs/", ".venv/", ".env", "live.yaml"} <= set(dockerignore)
        assert not any(line.startswith("!") for line in dockerignore)


def test_a_project_baked_from_an_older_template_updates_cleanly_with_cruft(tmp_path):
    template = tmp_path / "template"
    run(["git", "clone", "-q", str(TEMPLATE), str(template)])
    old = git(template, "rev-parse", "HEAD").stdout.strip()
    projects = tmp_path / "projects"
    env = clean_env(**GIT_IDENTITY)
    run(
        [
            tool("cruft"),
            "create",
            str(template),
            "--checkout",
            old,
            "--no-input",
            "--output-dir",
            str(projects),
            "--extra-context",
            json.dumps({"project_name": "Follower"}),
        ],
        env=env,
    )
    project = projects / "follower"
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "baked")
    # cruft check exits non-zero (run() fails) unless the project is at the template's newest commit.
    run([tool("cruft"), "check"], cwd=project, env=env)
    assert json.loads((project / ".cruft.json").read_text())["commit"] == old

    # The template moves on: a new line in the baked README.
    readme = template / "{{cookiecutter.project_slug}}" / "README.md"
    readme.write_text(readme.read_text() + "\nFollow template updates with `cruft update`.\n")
    git(template, "commit", "-qam", "Document cruft")
    stale = run([tool("cruft"), "check"], cwd=project, env=env, check=False)
    assert stale.returncode != 0, "cruft check should notice the newer template"

    run([tool("cruft"), "update", "--skip-apply-ask", "--allow-untracked-files"], cwd=project, env=env)
    assert "Follow template updates with `cruft update`." in (project / "README.md").read_text()
    assert not list(project.rglob("*.rej")), "the update left rejected hunks"
    assert (project / ".envs/prod.env").is_file(), "the update must keep the project's own secrets"
    git(project, "add", "-A")
    git(project, "commit", "-qm", "update")
    run([tool("cruft"), "check"], cwd=project, env=env)
    assert (
        json.loads((project / ".cruft.json").read_text())["commit"] == git(template, "rev-parse", "HEAD").stdout.strip()
    )


def test_use_this_template_copy_bakes_itself(tmp_path):
    copy = tmp_path / "my-shop"
    run(["git", "clone", "-q", str(TEMPLATE), str(copy)])
    # The "Bake in place" step of the workflow GitHub runs in a repository made with "Use this template", run as
    # it is written there (its `uv run` on the template's environment, which has what the step's `uv sync` gives).
    workflow = yaml.safe_load((TEMPLATE / ".github/workflows/use-this-template.yml").read_text())
    (step,) = [step for step in workflow["jobs"]["bake"]["steps"] if step.get("name") == "Bake in place"]
    # No git identity given: the step sets its own, as on GitHub's runner.
    environment = clean_env(REPOSITORY_NAME="my-shop", UV_PROJECT_ENVIRONMENT=str(BIN.parent), UV_NO_SYNC="1")
    environment["PATH"] = f"{BIN}{os.pathsep}{environment['PATH']}"
    run(["bash", "-e", "-c", step["run"]], cwd=copy, env=environment)
    tracked = set(git(copy, "ls-files").stdout.split())
    assert {"manage.py", "Dockerfile", "compose.yaml", "uv.lock", "my_shop/models.py"} <= tracked
    assert not {"cookiecutter.json", "check_answers.py", "hooks/post_gen_project.py"} & tracked
    assert ".envs/prod.env" not in tracked and not (copy / ".envs/prod.env").exists()
    assert git(copy, "status", "--porcelain").stdout == ""
    assert "Bake my-shop from the template" in git(copy, "log", "-1", "--format=%s").stdout
    assert git(copy, "log", "-1", "--format=%an").stdout.strip() == "github-actions[bot]"


def test_template_workflows_validate():
    workflows = sorted(str(p) for p in (TEMPLATE / ".github/workflows").glob("*.yml"))
    assert len(workflows) == 2
    run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *workflows])
    ci = yaml.safe_load((TEMPLATE / ".github/workflows/ci.yml").read_text())
    assert ci["jobs"]["suite"]["env"]["CI"] == "true", "the Docker tests must fail, not skip, without an engine"
    assert {"3.11", "3.12", "3.13"} == set(ci["jobs"]["bake"]["strategy"]["matrix"]["python"])
