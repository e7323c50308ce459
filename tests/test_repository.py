"""The template repository itself: its README's commands are what CI runs, and its own code is linted."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from support import TEMPLATE, bake, clean_env, run, tool

ZIZMOR = "1.32.0"  # the template's pinned dev dependency, and the baked pre-commit's


def readme_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", (TEMPLATE / "README.md").read_text(), re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.strip().splitlines()]


def test_readme_starts_with_the_bake_and_test_commands():
    text = (TEMPLATE / "README.md").read_text()
    assert text.index("```sh") < 200, "the commands must be the README's first lines"
    bake, test = readme_commands()
    assert "cookiecutter" in bake and "docker compose up" in bake
    assert test == "uv run pytest"


def test_the_readme_options_table_lists_every_question():
    questions = [key for key in json.loads((TEMPLATE / "cookiecutter.json").read_text()) if not key.startswith("_")]
    table = (TEMPLATE / "README.md").read_text().split("## Options", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`(\w+)`", " ".join(re.findall(r"^\| ([^|]+) \|", table, re.M))))
    assert set(questions) <= listed, f"not in the README's Options table: {sorted(set(questions) - listed)}"


def test_ci_runs_the_readme_test_command_after_the_engine_and_stand_ins():
    script = (TEMPLATE / ".ci/run").read_text()
    lines = [line.strip() for line in script.splitlines()]
    test_command = readme_commands()[1]
    assert test_command in lines
    assert lines.index(test_command) > lines.index('"$engine/setup"')
    assert lines.index(test_command) > lines.index('"$engine/standins" --scan "$scan_dir"')
    assert "set -euo pipefail" in lines


def test_the_template_workflow_runs_the_same_test_command_as_ci_run():
    """GitHub's runner has Docker but none of .ci/run's setup: one job runs the README's whole test command as
    .ci/run does (as root, CI=true, strace installed), not a subset."""
    ci_run = [line.strip() for line in (TEMPLATE / ".ci/run").read_text().splitlines() if line.strip()]
    test_command = readme_commands()[1]
    assert ci_run[-1] == test_command
    jobs = yaml.safe_load((TEMPLATE / ".github/workflows/ci.yml").read_text())["jobs"]
    suite = jobs["suite"]
    assert suite["env"]["CI"] == "true" and "matrix" not in suite.get("strategy", {})
    runs = [step["run"] for step in suite["steps"] if "run" in step]
    assert runs[-1] == f'sudo --preserve-env=CI env "PATH=$PATH" {test_command}', runs[-1]
    for job in jobs.values():  # GitHub sets CI=true everywhere: each job installs what tests/test_hooks.py needs
        assert any("apt-get install -y -qq strace" in step.get("run", "") for step in job["steps"]), job


def test_template_scripts_pass_shellcheck_and_ruff():
    run([tool("shellcheck"), str(TEMPLATE / ".ci/run")])
    run([tool("ruff"), "check", "--no-cache", "tests", "scripts"], cwd=TEMPLATE)
    run([tool("ruff"), "format", "--no-cache", "--check", "tests", "scripts"], cwd=TEMPLATE)


# ---- GitHub Actions: zizmor, and the "Use this template" bake commit ---------------------------------

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}
PINNED = re.compile(r"^\s*-?\s*uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def zizmor(*paths: Path) -> subprocess.CompletedProcess:
    """zizmor as its auditor persona sees them: every finding, down to the informational ones (unpinned service
    images, a token in a URL, jobs without a name or concurrency). An ignore comment must say why."""
    return run([tool("zizmor"), "--offline", "--no-progress", "--persona", "auditor", *map(str, paths)], check=False)


def assert_actions_pinned(workflows: Path) -> None:
    for path in sorted(workflows.glob("*.yml")):
        for line in path.read_text().splitlines():
            if "uses:" in line:
                assert PINNED.match(line), f"{path.name}: not pinned by commit with its version: {line.strip()}"


def test_template_workflows_pass_zizmor_with_actions_pinned_by_commit():
    workflows = TEMPLATE / ".github/workflows"
    result = zizmor(workflows)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_actions_pinned(workflows)
    bake = yaml.safe_load((workflows / "use-this-template.yml").read_text())
    assert bake["permissions"] == {}, "no token rights by default; only the pushing job gets contents: write"
    assert bake["jobs"]["bake"]["permissions"] == {"contents": "write"}
    # The push takes the token from a credential helper reading the environment: never in a URL.
    push = next(step["run"] for step in bake["jobs"]["bake"]["steps"] if step.get("name") == "Push")
    assert "GITHUB_TOKEN}@" not in push and "credential.helper" in push


def test_baked_github_workflows_pass_zizmor(cookies):
    project = bake(cookies, ci="github", key_value_store="valkey", use_celery="y")
    workflows = project / ".github/workflows"
    result = zizmor(workflows)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_actions_pinned(workflows)
    checkouts = [
        step
        for job in yaml.safe_load((workflows / "ci.yml").read_text())["jobs"].values()
        for step in job["steps"]
        if step.get("uses", "").startswith("actions/checkout@")
    ]
    assert checkouts and all(step["with"]["persist-credentials"] is False for step in checkouts)
    # The service images keep their tags (as compose's, updated by Dependabot or Renovate), each ignore with a reason.
    text = (workflows / "ci.yml").read_text()
    assert text.count("# zizmor: ignore[unpinned-images]") == 2 and "Dependabot or Renovate" in text
    # The same check runs in the project's pre-commit, so a new workflow is checked before it is pushed.
    hooks = (project / ".pre-commit-config.yaml").read_text()
    assert f"zizmor=={ZIZMOR}" in hooks
    env = clean_env(PRE_COMMIT_HOME=str(Path.home() / ".cache" / "pre-commit"), **GIT_IDENTITY)
    run(["git", "init", "-q"], cwd=project, env=env)
    run(["git", "add", "-A"], cwd=project, env=env)
    hook = run([tool("pre-commit"), "run", "zizmor", "--all-files"], cwd=project, env=env, timeout=900, check=False)
    assert hook.returncode == 0 and re.search(r"^zizmor\.+Passed$", hook.stdout, re.M), hook.stdout


def test_use_this_template_bake_commit_leaves_github_workflows_alone(tmp_path):
    """GitHub refuses a push from the workflow's built-in token that creates, changes or deletes anything in
    .github/workflows/ (that needs the `workflows` permission, which GITHUB_TOKEN cannot have). The bake
    commit must therefore leave that folder as the template had it; the baked workflows wait in
    .github/baked-workflows/ for the user to move them in with their own credentials."""
    copy = tmp_path / "my-shop"
    files = run(["git", "ls-files", "-co", "--exclude-standard"], cwd=TEMPLATE).stdout.splitlines()
    for name in files:
        source = TEMPLATE / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    env = clean_env(**GIT_IDENTITY)
    run(["git", "init", "-q", "-b", "main"], cwd=copy, env=env)
    run(["git", "add", "-A"], cwd=copy, env=env)
    run(["git", "commit", "-qm", "Initial commit"], cwd=copy, env=env)  # what "Use this template" creates
    before = run(["git", "ls-tree", "-r", "HEAD", ".github/workflows"], cwd=copy).stdout
    run([sys.executable, "scripts/bake_into_repository.py", "--name", "my-shop", "--commit"], cwd=copy, env=env)

    changed = run(["git", "diff", "--name-only", "HEAD~1", "HEAD"], cwd=copy).stdout.splitlines()
    assert "manage.py" in changed
    assert [name for name in changed if name.startswith(".github/workflows/")] == []
    assert run(["git", "ls-tree", "-r", "HEAD", ".github/workflows"], cwd=copy).stdout == before
    baked = copy / ".github/baked-workflows"
    assert (baked / "ci.yml").is_file() and "uv run coverage run -m pytest" in (baked / "ci.yml").read_text()
    # The one step left to the user, in the project's README.
    readme = (copy / "README.md").read_text()
    assert "git mv .github/baked-workflows .github/workflows" in readme
    # The template's own workflows left in place do nothing in the new repository.
    for path in (copy / ".github/workflows").glob("*.yml"):
        jobs = yaml.safe_load(path.read_text())["jobs"].values()
        assert all("is_template" in job["if"] for job in jobs), path.name
