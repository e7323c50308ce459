"""The template repository itself: its README's commands are what CI runs, and its own code is linted."""

import re

from conftest import TEMPLATE, run, tool


def readme_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", (TEMPLATE / "README.md").read_text(), re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.strip().splitlines()]


def test_readme_starts_with_the_bake_and_test_commands():
    text = (TEMPLATE / "README.md").read_text()
    assert text.index("```sh") < 200, "the commands must be the README's first lines"
    bake, test = readme_commands()
    assert "cookiecutter" in bake and "docker compose up" in bake
    assert test == "uv run pytest"


def test_ci_runs_the_readme_test_command_after_the_engine_and_stand_ins():
    script = (TEMPLATE / ".ci/run").read_text()
    lines = [line.strip() for line in script.splitlines()]
    test_command = readme_commands()[1]
    assert test_command in lines
    assert lines.index(test_command) > lines.index('"$engine/setup"')
    assert lines.index(test_command) > lines.index('"$engine/standins" --scan "$scan_dir"')
    assert "set -euo pipefail" in lines


def test_template_scripts_pass_shellcheck_and_ruff():
    run([tool("shellcheck"), str(TEMPLATE / ".ci/run")])
    run([tool("ruff"), "check", "--no-cache", "tests", "scripts"], cwd=TEMPLATE)
    run([tool("ruff"), "format", "--no-cache", "--check", "tests", "scripts"], cwd=TEMPLATE)
