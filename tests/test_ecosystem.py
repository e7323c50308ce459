"""The tooling around the baked project and the template: pre-commit, Makefile, dependency updates,
`docker compose watch`, cruft updates, and "Use this template"."""

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import TEMPLATE, bake, clean_env, load_yaml, run, tool

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(project: Path, *args: str) -> subprocess.CompletedProcess:
    return run(["git", *args], cwd=project, env=clean_env(**GIT_IDENTITY))


def test_pre_commit_passes_on_a_fresh_bake_and_refuses_prod_env(cookies):
    project = bake(cookies, project_name="Hooked")
    git(project, "init", "-q")
    git(project, "add", "-A")
    env = clean_env(PRE_COMMIT_HOME=str(Path.home() / ".cache" / "pre-commit"))
    result = run(
        [tool("pre-commit"), "run", "--all-files", "--show-diff-on-failure"], cwd=project, env=env, timeout=900
    )
    hooks = (
        "ruff check",
        "ruff format",
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
    git(project, "add", "-f", ".envs/prod.env")
    refused = run(
        [tool("pre-commit"), "run", "no-prod-env", "--files", ".envs/prod.env"], cwd=project, env=env, check=False
    )
    assert refused.returncode != 0
    assert "must not be committed" in refused.stdout


def test_makefile_offers_the_everyday_tasks(cookies):
    project = bake(cookies, project_name="Tasks")
    listed = run(["make", "help"], cwd=project).stdout
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
    assert run(["make", "-n", "watch"], cwd=project).stdout.strip() == (
        "docker compose -f compose.yaml -f compose.watch.yaml watch"
    )
    dry = run(["make", "-n", "build-live", "TAG=1.2.3"], cwd=project).stdout
    assert "docker build --target applayer -t tasks-app:1.2.3 ." in dry
    assert "docker build --target staticlayer -t tasks-static:1.2.3 ." in dry
    deploy = run(["make", "-n", "deploy", "TAG=1.2.3"], cwd=project).stdout.splitlines()
    assert "migrate" in deploy[0] and "up -d --wait" in deploy[1], "migrations must run before the new release"


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
    the worker restarted after a sync, and neither the secrets nor the host's virtualenv are ever copied."""
    for celery in ("y", "n"):
        project = bake(
            cookies,
            project_name=f"Synced {celery}",
            key_value_store="valkey" if celery == "y" else "none",
            use_celery=celery,
        )
        services = load_yaml((project / "compose.watch.yaml").read_text())["services"]
        assert set(services) == ({"app", "worker"} if celery == "y" else {"app"})
        for name, service in services.items():
            assert service["volumes"] == ["media:/srv/media"]
            (rule,) = service["develop"]["watch"]
            assert rule["action"] == ("sync+restart" if name == "worker" else "sync")
            assert (rule["path"], rule["target"]) == (".", "/app")
            assert {".envs/", ".venv/", ".env", "live.yaml"} <= set(rule["ignore"])
        dockerignore = (project / ".dockerignore").read_text().splitlines()
        assert "*" in dockerignore and not any(line.startswith("!.env") for line in dockerignore)


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
    assert run([tool("cruft"), "check"], cwd=project, env=env).returncode == 0

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
    assert run([tool("cruft"), "check"], cwd=project, env=env).returncode == 0


def test_use_this_template_copy_bakes_itself(tmp_path):
    copy = tmp_path / "my-shop"
    run(["git", "clone", "-q", str(TEMPLATE), str(copy)])
    run(
        [sys.executable, "scripts/bake_into_repository.py", "--name", "my-shop", "--commit"],
        cwd=copy,
        env=clean_env(**GIT_IDENTITY),
    )
    tracked = set(git(copy, "ls-files").stdout.split())
    assert {"manage.py", "Dockerfile", "compose.yaml", "uv.lock", "my_shop/models.py"} <= tracked
    assert not {"cookiecutter.json", "hooks/pre_gen_project.py"} & tracked
    assert ".envs/prod.env" not in tracked and not (copy / ".envs/prod.env").exists()
    assert git(copy, "status", "--porcelain").stdout == ""
    assert "Bake my-shop from the template" in git(copy, "log", "-1", "--format=%s").stdout
    workflow = yaml.safe_load((TEMPLATE / ".github/workflows/use-this-template.yml").read_text())
    assert "scripts/bake_into_repository.py" in json.dumps(workflow)


def test_template_workflows_validate():
    workflows = sorted(str(p) for p in (TEMPLATE / ".github/workflows").glob("*.yml"))
    assert len(workflows) == 2
    run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *workflows])
    ci = yaml.safe_load((TEMPLATE / ".github/workflows/ci.yml").read_text())
    assert ci["jobs"]["e2e"]["env"]["CI"] == "true", "the Docker tests must fail, not skip, without an engine"
    assert {"3.11", "3.12", "3.13"} == set(ci["jobs"]["bake"]["strategy"]["matrix"]["python"])
