"""A covering set of answer combinations bakes into well-formed files, and the field's linters accept them."""

import itertools
import json
import math
import os
import re
import runpy
import subprocess
import types
from pathlib import Path

import pytest
import yaml

import check_answers
from support import (
    E2E_VARIANTS,
    OPTIONS,
    REFUSED,
    SERVICES,
    answers,
    bake,
    bakes,
    clean_env,
    combination_id,
    load_yaml,
    pairs,
    refused,
    require,
    run,
    tool,
)

# A covering set: every pair of answers in at least one bake, and every end-to-end variant (support.bakes()).
# Each is rendered and linted: 31 bakes instead of 140 rendered and 35 linted.
ALL = bakes()


def test_the_bakes_cover_every_allowed_pair_and_no_refused_one():
    """The property the render and lint tests below rely on, checked against check_answers.py itself: every pair
    of values of two options that it accepts is in some bake, each bake is accepted, each refused pair is refused,
    the end-to-end variants are bakes, and the set stays a small part of the full product."""
    questions = json.loads((check_answers.PROJECT.parent / "cookiecutter.json").read_text())
    choices = {key for key, value in questions.items() if isinstance(value, list) and not key.startswith("_")}
    assert set(OPTIONS) == choices | {"use_celery"}, "an answer that changes the files is missing from the matrix"
    text = {"project_name": "Pairs", "project_slug": "pairs", "description": "d", "author_name": "a"}
    text |= {"email": "a@example.com", "__domain_name": "example.com"}
    for row in ALL:
        assert check_answers.problems({**text, **row}) == [], combination_id(row)
    for refusal in REFUSED:
        assert check_answers.problems({**text, **answers(**refusal)}), f"{refusal} is not refused"
    covered = set().union(*map(pairs, ALL))
    for a, b in itertools.combinations(OPTIONS, 2):
        for x, y in itertools.product(OPTIONS[a], OPTIONS[b]):
            pair = frozenset([(a, x), (b, y)])
            assert (pair in covered) != refused({a: x, b: y}, REFUSED), f"{a}={x}, {b}={y}"
    assert all(answers(**given) in ALL for given in E2E_VARIANTS.values())
    assert len({combination_id(row) for row in ALL}) == len(ALL)
    product = math.prod(map(len, OPTIONS.values()))
    print(f"{len(ALL)} bakes cover every allowed pair; the full product has {product}")
    assert len(ALL) < 40 and len(ALL) * 4 < product


UNRENDERED = re.compile(r"(?<!\$)\{\{|\{%|\{#|cookiecutter\.")


def text_files(project: Path):
    for path in sorted(project.rglob("*")):
        if path.is_file():
            yield path, path.read_text(errors="strict")


@pytest.mark.parametrize("context", ALL, ids=combination_id)
def test_bakes_with_nothing_left_unrendered_and_valid_yaml(cookies, context):
    assert_fully_rendered(bake(cookies, **context))


@pytest.mark.parametrize("services", ["none", "valkey", "celery-redis"])
def test_bakes_with_sentry_with_nothing_left_unrendered(cookies, services):
    assert_fully_rendered(bake(cookies, use_sentry="y", deploy_target="compose+kubernetes", **SERVICES[services]))


def assert_fully_rendered(project: Path) -> None:
    for path, text in text_files(project):
        relative = path.relative_to(project)
        if path.suffix == ".html" and "templates" in relative.parts:
            # Django templates use {% %} themselves; only the template's own variables must be gone.
            assert "cookiecutter" not in text, f"unrendered variable in {relative}"
            continue
        assert "\r" not in text, f"{relative} has CR line endings"
        match = UNRENDERED.search(text)
        assert match is None, (
            f"unrendered {match.group()!r} in {relative}: {text[match.start() - 40 : match.end() + 40]!r}"
        )
        if path.suffix in (".yaml", ".yml"):
            assert load_yaml(text) is not None, f"{relative} is empty"
    for name in (
        "Dockerfile",
        "compose.yaml",
        "compose.watch.yaml",
        "compose.prod.yaml",
        "uv.lock",
        ".envs/prod.env",
        "wait_entrypoint.py",
    ):
        assert (project / name).is_file(), f"{name} is missing"


def compose_healthcheck_commands(project: Path) -> list[str]:
    commands = []
    for name in ("compose.yaml", "compose.prod.yaml"):
        for service in yaml.safe_load((project / name).read_text())["services"].values():
            test = service.get("healthcheck", {}).get("test")
            if not test:
                continue
            assert test[0] in ("CMD", "CMD-SHELL"), f"{name}: healthcheck {test!r}"
            if test[0] == "CMD-SHELL":
                # A shell only where the command needs one (variables, substitution, a pipe): the exec form
                # starts no shell and cannot be mis-quoted.
                assert re.search(r"[$|]", test[1]), f"{name}: {test[1]!r} needs no shell: use the CMD form"
                # Compose turns $$ into $ before the shell sees the command.
                commands.append(test[1].replace("$$", "$"))
    return commands


@pytest.mark.parametrize("context", ALL, ids=combination_id)
def test_linters_accept_the_baked_project(cookies, context, tmp_path):
    project = bake(cookies, **context)
    run([tool("ruff"), "check", "--no-cache", "."], cwd=project)
    run([tool("ruff"), "format", "--no-cache", "--check", "."], cwd=project)
    run([tool("hadolint"), "Dockerfile"], cwd=project)
    # Security lint of the project's code (its tests assert freely): nothing found, or a justified nosec.
    run([tool("bandit"), "-q", "-r", ".", "-x", "./tests,./.venv"], cwd=project)
    scripts = [str(p) for p in project.rglob("*.sh")]
    for index, command in enumerate(compose_healthcheck_commands(project)):
        script = tmp_path / f"healthcheck-{index}.sh"
        script.write_text(f"#!/bin/sh\n{command}\n")
        scripts.append(str(script))
    run([tool("shellcheck"), "--shell=sh", *scripts])
    run([tool("shellcheck"), "live"], cwd=project)  # bash, as its shebang says
    workflows = list((project / ".github/workflows").glob("*.yml")) if (project / ".github").exists() else []
    if workflows:
        run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, workflows)])
    if (project / ".gitlab-ci.yml").exists():
        run([tool("check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", str(project / ".gitlab-ci.yml")])


def docker_compose_available() -> bool:
    try:
        return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def compose_config(project: Path, *files: str, env: dict[str, str] | None = None) -> dict:
    flags = [arg for name in files for arg in ("-f", name)]
    command = ["docker", "compose", *flags, "config", "--format", "json"]
    return json.loads(run(command, cwd=project, env=clean_env(**(env or {}))).stdout)


@pytest.mark.parametrize("services", list(SERVICES))
def test_docker_compose_accepts_the_compose_files(cookies, services):
    require(docker_compose_available(), "docker compose is not installed")
    project = bake(cookies, **SERVICES[services])
    for name in ("compose.yaml", "compose.prod.yaml"):
        run(["docker", "compose", "-f", name, "config", "-q"], cwd=project, env=clean_env())
    # The watch override, merged over compose.yaml as `make watch` runs it: every service that runs the
    # source loses the bind mount and syncs it instead; compose.yaml alone keeps the bind mount.
    source = str(project)
    mounted = compose_config(project, "compose.yaml")["services"]
    watched = compose_config(project, "compose.yaml", "compose.watch.yaml")["services"]
    runs_source = {"app"} | ({"worker", "beat"} if services.startswith("celery") else set())
    assert {name for name, s in mounted.items() if any(v["type"] == "bind" for v in s.get("volumes", []))} == (
        runs_source
    )
    for name in runs_source:
        assert {(v["source"], v["target"]) for v in mounted[name]["volumes"] if v["type"] == "bind"} == {
            (source, "/app")
        }
        assert [v["target"] for v in watched[name]["volumes"]] == ["/srv/media"], f"{name} still mounts the source"
        rules = {rule["action"]: rule for rule in watched[name]["develop"]["watch"] if rule["path"] == source}
        assert set(rules) == {"sync" if name == "app" else "sync+restart"}
        (rule,) = rules.values()
        assert rule["target"] == "/app" and ".envs/" in rule["ignore"], rule
        rebuilds = {Path(r["path"]).name for r in watched[name]["develop"]["watch"] if r["action"] == "rebuild"}
        # One image (issue 21.11): the app builds it and rebuilds it when the dependencies change; the worker and
        # beat run it, and start after the app, so a rebuild recreates and starts them on the new image too.
        assert rebuilds == ({"uv.lock", "pyproject.toml"} if name == "app" else set())
        assert mounted[name]["image"] == watched[name]["image"] == f"{project.name}-dev-app"
        assert ("build" in mounted[name]) == (name == "app") and ("build" in watched[name]) == (name == "app")
        assert name == "app" or watched[name]["depends_on"]["app"]["condition"] == "service_started"
    for name in set(watched) - runs_source:
        assert watched[name] == mounted[name], f"the watch override changes {name}"
    # Off-site copies are optional (issue 27): off, no offsite service at all; ./live turns its profile on when
    # .envs/offsite.env sets anything. The rest checks the stack with them on.
    assert "offsite" not in compose_config(project, "compose.prod.yaml")["services"]
    offsite_on = {"COMPOSE_PROFILES": "offsite"}
    live = compose_config(project, "compose.prod.yaml", env=offsite_on)["services"]
    published = {name for name, service in live.items() if service.get("ports")}
    assert published == {"edge"}, "only the edge may be published in the live stack"
    assert sorted(port["target"] for port in live["edge"]["ports"]) == [80, 443]
    # Behind a proxy of the user's: no edge, nginx alone published, on loopback unless LIVE_BIND says otherwise.
    behind = compose_config(project, "compose.prod.yaml", "compose.behind-proxy.yaml", env=offsite_on)["services"]
    assert "edge" not in behind and set(behind) == set(live) - {"edge"}
    assert {name for name, service in behind.items() if service.get("ports")} == {"nginx"}
    assert [(p["host_ip"], p["published"], p["target"]) for p in behind["nginx"]["ports"]] == [
        ("127.0.0.1", "8001", 8080)
    ]
    assert all("build" not in service for service in live.values()), "the live stack must not build"
    assert all(service.get("restart") == "unless-stopped" for service in live.values())
    assert all(service.get("healthcheck") for service in live.values())
    expected = (
        {"edge", "app", "nginx", "db", "backup", "offsite"}
        | ({SERVICES[services]["key_value_store"]} if services != "none" else set())
        | ({"worker", "beat"} if services.startswith("celery") else set())
    )
    assert set(live) == expected
    # Containment (issue 20): each service only on the networks it needs, under a memory and a pids limit.
    store = SERVICES[services]["key_value_store"]
    networks = {name: set(service["networks"]) for name, service in live.items()}
    assert networks == {
        "edge": {"public"},
        "nginx": {"public", "web"},
        "db": {"data"},
        "backup": {"data"},
        "offsite": {"offsite"},
        **{name: {"web", "data"} for name in {"app", "worker", "beat"} & set(live)},
        **({store: {"data"}} if store != "none" else {}),
    }
    assert set(behind["nginx"]["networks"]) == {"public", "web"}
    internal = {
        name
        for name, network in compose_config(project, "compose.prod.yaml")["networks"].items()
        if network.get("internal")
    }
    assert internal == {"data"}
    assert all(int(service["mem_limit"]) > 0 and service["pids_limit"] > 0 for service in live.values())
    # The release Sentry reports name: the image tag the live stack runs.
    tagged = compose_config(project, "compose.prod.yaml", env={"TAG": "2.0.1"})["services"]
    for name in {"app", "worker", "beat"} & set(tagged):
        assert tagged[name]["environment"]["APP_VERSION"] == "2.0.1"
        assert tagged[name]["image"].endswith("-app:2.0.1")


def test_the_development_image_runs_as_the_owner_of_the_checkout(cookies, tmp_path):
    """Issue 21.2: the Makefile passes the checkout owner's ids to the build, root's too (before, root kept uid
    1000, which cannot write a root-owned checkout: startapp and makemigrations failed). tests/test_new_app.py
    runs startapp and makemigrations as root."""
    project = bake(cookies, project_name="Owner")
    show = ["make", "--no-print-directory", "--eval", "ids: ; @echo $$UID:$$GID", "ids"]
    stat = project.stat()
    assert run(show, cwd=project).stdout.strip() == f"{stat.st_uid}:{stat.st_gid}"
    if os.geteuid() == 0:
        os.chown(project, 4242, 4343)  # a user's checkout, with make run as root (sudo make up)
        assert run(show, cwd=project).stdout.strip() == "4242:4343"


def test_development_ports_are_published_on_loopback_only(cookies):
    require(docker_compose_available(), "docker compose is not installed")
    project = bake(cookies)
    ports = [
        (name, port)
        for name, service in compose_config(project, "compose.yaml")["services"].items()
        for port in service.get("ports", [])
    ]
    assert {name for name, _ in ports} == {"app", "nginx", "db"}
    for name, port in ports:
        assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond this machine"


def test_stray_secrets_are_neither_committed_nor_sent_to_the_build(cookies, tmp_path):
    """`git add -A` in a project holding a rendered manifest and stray env files stages none of them; the
    image build's context (what .dockerignore lets through) holds none of them either. The e2e tests check
    the built image itself."""
    project = bake(cookies)
    strays = [".env", ".env.local", "live.yaml", ".envs/prod.env", ".envs/staging.env", "config/.env"]
    for stray in strays:
        path = project / stray
        if not path.exists():
            path.write_text("SECRET_KEY=stray-secret\n")
    run(["git", "init", "-q"], cwd=project)
    run(["git", "add", "-A"], cwd=project)
    staged = run(["git", "ls-files"], cwd=project).stdout.split()
    assert not set(strays) & set(staged), f"staged: {set(strays) & set(staged)}"
    assert {"manage.py", ".envs/dev.env", ".envs/prod.env.example"} <= set(staged)
    require(docker_compose_available(), "docker is not installed")
    # The build context as BuildKit sends it, copied out as files: no image, no base image to pull.
    context = tmp_path / "context"
    dockerfile = "FROM scratch\nCOPY . /\n"
    command = ["docker", "build", "-q", "--output", f"type=local,dest={context}", "-f", "-", "."]
    result = subprocess.run(command, cwd=project, input=dockerfile, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    sent = {str(path.relative_to(context)) for path in context.rglob("*") if path.is_file()}
    assert not set(strays) & sent, f"in the build context: {set(strays) & sent}"
    assert {"manage.py", "uv.lock", "config/settings.py", "nginx/nginx.conf"} <= sent


def test_a_new_app_reaches_the_build_and_local_secrets_and_junk_do_not(cookies, tmp_path):
    """Issue 21.1: .dockerignore is a deny-list. What `manage.py startapp` makes, a new package and a new top-level
    file are in the build context (and so in the images and the `make watch` sync) with no edit; backups and
    their keys, private keys, env files, git, virtualenvs, caches and local data are not. The e2e test
    tests/test_new_app.py builds and serves such an app."""
    require(docker_compose_available(), "docker is not installed")
    project = bake(cookies, project_name="Deny List")
    wanted = ["catalog/__init__.py", "catalog/models.py", "catalog/migrations/0001_initial.py"]
    wanted += ["catalog/static/catalog/site.css", "catalog/templates/catalog/list.html", "reports/__init__.py"]
    wanted += ["settings_local_defaults.py", "k8s.md"]
    strays = [".env", ".env.production", "catalog/.env", ".envs/prod.env", ".envs/prod.env.example"]
    strays += ["backups/db-20250101T000000Z.dump", "backup-identity.txt", "keys/backup-identity.txt"]
    strays += ["tls/server.key", "tls/server.pem", "deploy/id_ed25519", "live.yaml", "prod.rendered.yaml"]
    strays += [".git/config", ".venv/bin/python", "venv/bin/python", "node_modules/x/index.js"]
    strays += ["catalog/__pycache__/models.cpython-313.pyc", ".pytest_cache/v", ".ruff_cache/x", "db.sqlite3"]
    strays += ["media/documents/upload.pdf", "staticfiles/admin/base.css", "debug.log", ".release"]
    for name in wanted + strays:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text("SECRET_KEY=stray-secret\n" if name in strays else "# mine\n")
    context = tmp_path / "context"
    command = ["docker", "build", "-q", "--output", f"type=local,dest={context}", "-f", "-", "."]
    built = subprocess.run(command, cwd=project, input="FROM scratch\nCOPY . /\n", capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    sent = {str(path.relative_to(context)) for path in context.rglob("*") if path.is_file()}
    assert set(wanted) <= sent, f"left out of the build: {set(wanted) - sent}"
    assert not set(strays) & sent, f"in the build context: {set(strays) & sent}"
    assert not [name for name in sent if name.startswith((".envs", ".git/", "backups"))], sorted(sent)


def test_readme_backups_section_names_real_make_targets(cookies):
    """Issue 13: the baked README's "Backups and restore" section; every `make` command it gives is one the
    Makefile lists (the commands themselves run in tests/test_backups.py)."""
    project = bake(cookies)
    readme = (project / "README.md").read_text()
    section = re.search(r"^## Backups and restore\n(.*?)^## ", readme, re.S | re.M)
    assert section, "the README has no 'Backups and restore' section"
    named = set(re.findall(r"`make ([a-z-]+)", section.group(1)))
    assert named >= {"backup", "backups", "restore", "pg-upgrade"}, named
    listed = set(re.findall(r"^  ([a-z-]+) ", run(["make", "help"], cwd=project).stdout, re.M))
    assert named <= listed, f"not in `make help`: {named - listed}"
    for where in ("./backups", "BACKUP_PATH", "rsync", "/var/lib/postgresql"):
        assert where in section.group(1), where


def test_beat_is_one_locked_down_scheduler_in_both_stacks(cookies):
    """One beat, after the worker, on the worker's image and hardening; its name makes scaling it fail, its
    schedule state is in /tmp, its healthcheck reads the heartbeat; a restore stops it too."""
    require(docker_compose_available(), "docker compose is not installed")
    project = bake(cookies, project_name="Beat Shop", use_celery="y")
    for name in ("compose.yaml", "compose.prod.yaml"):
        services = list(load_yaml((project / name).read_text())["services"])
        assert services.index("beat") == services.index("worker") + 1, services
        config = compose_config(project, name)["services"]
        beat, worker = config["beat"], config["worker"]
        assert beat["container_name"] == f"{compose_config(project, name)['name']}-beat"
        assert "replicas" not in beat.get("deploy", {}) and "scale" not in beat
        assert beat["command"][:4] == ["celery", "-A", "config", "beat"]
        assert beat["command"][-2:] == ["--schedule", "/tmp/celerybeat-schedule"]
        assert "/tmp/celerybeat-heartbeat" in " ".join(beat["healthcheck"]["test"])
        for key in ("image", "read_only", "tmpfs", "cap_drop", "security_opt", "restart", "env_file", "depends_on"):
            assert beat.get(key) == worker.get(key), f"{name}: beat's {key} differs from the worker's"
    # make restore stops every service that writes to the database or the media, and nothing it restores with:
    # ./live's WRITERS, which its restore stops.
    (stopped,) = re.findall(r'^WRITERS="([a-z ]+)"$', (project / "live").read_text(), re.M)
    live = set(compose_config(project, "compose.prod.yaml")["services"])
    assert set(stopped.split()) == live - {"db", "valkey", "edge", "offsite"}, stopped


def test_every_beat_and_sentry_variable_is_in_both_env_files_and_the_readme_table(cookies):
    project = bake(cookies, project_name="Variables", use_sentry="y")
    readme = (project / "README.md").read_text()
    for name in ("CLEAR_SESSIONS_SCHEDULE", "SENTRY_DSN", "SENTRY_ENVIRONMENT"):
        assert re.search(rf"^#? ?{name}=", (project / ".envs/dev.env").read_text(), re.M), name
        assert re.search(rf"^#? ?{name}=", (project / ".envs/prod.env.example").read_text(), re.M), name
        assert f"| `{name}` |" in readme, name
    assert "| `APP_VERSION` |" in readme  # set by compose.prod.yaml, not in .envs/


def test_every_email_variable_is_in_both_env_files_and_the_readme_table(cookies):
    project = bake(cookies)
    readme = (project / "README.md").read_text()
    for name in ("EMAIL_URL", "DEFAULT_FROM_EMAIL", "SERVER_EMAIL", "ADMINS"):
        assert f"{name}" in (project / ".envs/dev.env").read_text(), name
        assert re.search(rf"^#? ?{name}=", (project / ".envs/prod.env.example").read_text(), re.M), name
        assert f"| `{name}` |" in readme, name
    assert "| `EMAIL_TIMEOUT` |" in readme


def test_every_sign_in_limit_is_in_the_env_example_and_the_readme_table(cookies):
    project = bake(cookies)
    readme = (project / "README.md").read_text()
    names = ["LOGIN_FAILURE_LIMIT", "LOGIN_COOLOFF_SECONDS", "PASSWORD_RESET_LIMIT_PER_CLIENT"]
    names += ["PASSWORD_RESET_LIMIT_PER_ADDRESS", "PASSWORD_RESET_WINDOW_SECONDS"]
    for name in [*names, "SIGNUP_LIMIT_PER_CLIENT", "SIGNUP_WINDOW_SECONDS"]:
        assert re.search(rf"^#? ?{name}=", (project / ".envs/prod.env.example").read_text(), re.M), name
        assert f"| `{name}` |" in readme, name
    assert "| `CLIENT_IP_HEADER` |" in readme


def test_the_makefile_switches_the_live_stack_behind_a_proxy_and_refuses_a_bad_switch(cookies):
    """make's BEHIND_PROXY (./live's): 0 (the default) runs compose.prod.yaml with its edge, 1 adds
    compose.behind-proxy.yaml, anything else stops before running a command, saying what to type."""
    project = bake(cookies)
    edge = run(["make", "status-live"], cwd=project, env=clean_env(), check=False).stdout
    assert "files: compose.prod.yaml (BEHIND_PROXY=0)" in edge and "behind-proxy" not in edge
    behind = run(["make", "status-live", "BEHIND_PROXY=1"], cwd=project, env=clean_env(), check=False).stdout
    assert "files: compose.prod.yaml:compose.behind-proxy.yaml (BEHIND_PROXY=1)" in behind
    # make stop-live removes the edge in either mode (the behind-proxy files leave it out by a profile), and
    # offsite whether off-site copies are on or off (its own profile): every profile.
    live = (project / "live").read_text()
    stop = live[live.index("\nstop() {") :]
    assert "docker compose --profile '*' down --remove-orphans\n" in stop[: stop.index("\n}\n") + 1]
    refused = run(["make", "deploy", "BEHIND_PROXY=yes"], cwd=project, env=clean_env(), check=False)
    assert refused.returncode != 0 and refused.stdout == ""
    assert "BEHIND_PROXY=yes: use 1 (behind your own TLS proxy) or 0 (the edge; the default)" in refused.stderr


def test_gunicorn_believes_forwarded_headers_only_from_app_trusted_proxies(cookies, monkeypatch):
    """gunicorn.conf.py's pre_request (issue 20): X-Forwarded-*/Forwarded stay only from the peers in
    APP_TRUSTED_PROXIES (addresses, ranges, or names looked up); from any other peer they are removed and
    X-Forwarded-For names the peer. gunicorn's own forwarded_allow_ips gets the address entries only."""
    project = bake(cookies, key_value_store="none", use_celery="n")
    claim = [("HOST", "shop.example.com"), ("X-FORWARDED-PROTO", "https"), ("X-FORWARDED-FOR", "203.0.113.9")]
    claim += [("X-FORWARDED-SSL", "on"), ("FORWARDED", "for=203.0.113.9;proto=https")]

    def headers_seen(trusted: str | None, peer: str) -> list[tuple[str, str]]:
        if trusted is None:
            monkeypatch.delenv("APP_TRUSTED_PROXIES", raising=False)
        else:
            monkeypatch.setenv("APP_TRUSTED_PROXIES", trusted)
        conf = runpy.run_path(str(project / "gunicorn.conf.py"))
        request = types.SimpleNamespace(headers=list(claim), peer_addr=(peer, 40000))
        conf["pre_request"](None, request)
        return request.headers

    stripped = [("HOST", "shop.example.com"), ("X-FORWARDED-FOR", "10.9.8.7")]
    assert headers_seen(None, "127.0.0.1") == claim  # loopback by default
    assert headers_seen(None, "10.9.8.7") == stripped
    assert headers_seen("localhost", "127.0.0.1") == claim  # a name, looked up
    assert headers_seen("localhost", "10.9.8.7") == stripped
    assert headers_seen("10.0.0.0/8", "10.9.8.7") == claim
    assert headers_seen("10.0.0.0/8,nginx", "192.0.2.1") == [
        ("HOST", "shop.example.com"),
        ("X-FORWARDED-FOR", "192.0.2.1"),
    ]
    monkeypatch.setenv("APP_TRUSTED_PROXIES", "nginx,10.0.0.0/8")
    assert runpy.run_path(str(project / "gunicorn.conf.py"))["forwarded_allow_ips"] == "10.0.0.0/8"
