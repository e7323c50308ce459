"""Fixtures and pytest hooks shared by the template's tests (the helpers are in support.py).

Scheduling. Each end-to-end stack is one unit of work (STACKS): its tests run in order on one worker, which bakes,
builds and starts the stack once. Every other test is a unit of its own, handed out one by one. The stacks start
first, longest first, and the quick tests fill the gaps. (pytest-xdist's own `xdist_group` marks would say the same,
but xdist 3.8 cannot apply them under pytest 9.2: it renames the items through an attribute pytest no longer reads.)"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

import pytest
from xdist.scheduler import LoadScopeScheduling

from support import (
    ADMIN_PASSWORD,
    DOMAIN,
    EDGE,
    PEBBLE,
    STRAYS,
    TEMPLATE,
    TIMEOUT,
    Browser,
    EdgeProject,
    Project,
    bake,
    require_engine,
    run,
    signed_in,
    stack_name,
    upload,
    write_pebble_api_root,
)

# The end-to-end stacks, longest first (minutes of each in a 4-worker run of the old layout): a nodeid prefix (a
# file, or a class in it) and the stack its tests share. Two prefixes may name one stack (TestOffsite runs on
# TestRestore's).
STACKS = {
    "tests/test_e2e.py::TestStackOnTheDefaults": "full",  # 7
    "tests/test_backups.py::TestRestore": "restore",  # 6, with TestOffsite
    "tests/test_backups.py::TestOffsite": "restore",
    "tests/test_release.py": "release",  # 5
    "tests/test_e2e.py::TestStackOnTheOldestVersions": "lean",  # 4
    "tests/test_new_app.py": "new-app",  # 3
    "tests/test_live_commands.py": "live-commands",  # 2.5
    "tests/test_e2e.py::TestStackWithRedis": "redis",  # 1.9
    "tests/test_edge.py::TestEdge": "edge",  # 1.5 + 2.3: the edge's tests, then containment's on the same stack
    "tests/test_containment.py": "edge",
    "tests/test_login_limits.py": "limits",  # 1.4
    "tests/test_accounts.py::TestAccounts": "accounts",  # one live stack and an SMTP catcher
    "tests/test_backups.py::TestScheduledBackups": "backup-schedule",  # 0.7
    "tests/test_dev_redis.py": "dev-redis",  # 0.5
    # Issue 25, the frontend option: its live stack, then its development stack (make up, make watch).
    "tests/test_frontend.py::TestTailwindLive": "frontend-live",
    "tests/test_frontend.py::TestTailwindDevelopment": "frontend-dev",
    "tests/test_api.py::TestDrf": "api-drf",  # API: one live stack per framework
    "tests/test_api.py::TestNinja": "api-ninja",
    "tests/test_media_s3.py::TestMediaInABucket": "media-s3",  # media_storage=s3, moto as the bucket
    # Issue 26: the live stack on a three-node Docker Swarm of dind containers (its own network and registry).
    "tests/test_swarm.py::TestSwarm": "swarm",
}


def stack_of(nodeid: str) -> tuple[int, str] | None:
    """The stack a test runs on, and the position of its prefix in STACKS (the order of a stack's files)."""
    for position, (prefix, stack) in enumerate(STACKS.items()):
        if nodeid == prefix or nodeid.startswith((prefix + "::", prefix + "[")):
            return position, stack
    return None


def pytest_configure(config: pytest.Config) -> None:
    # pytest-cookies bakes from --template, "." by default: make it this template wherever pytest runs.
    config.option.template = str(TEMPLATE)


class StackScheduling(LoadScopeScheduling):
    """xdist's loadscope, with a stack's tests as one scope and any other test as a scope of its own, handed out
    in collection order (never re-sorted by size: pytest_collection_modifyitems put the longest first)."""

    def __init__(self, config: pytest.Config, log=None) -> None:
        super().__init__(config, log)
        config.option.loadscopereorder = False

    def _split_scope(self, nodeid: str) -> str:
        found = stack_of(nodeid)
        return found[1] if found else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log) -> StackScheduling:
    return StackScheduling(config, log)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: three workers per core, at most 5. The end-to-end tests mostly wait (for a stack to become
    healthy, a schedule to fire, a certificate), so one worker per core leaves the cores idle. At most 5: each
    worker may run a live stack (4 networks) beside a development one, and Docker's default address pools hold
    31 networks in all ("all predefined address pools have been fully subnetted" with 6 here). The
    PYTEST_XDIST_AUTO_NUM_WORKERS variable overrides it, as in xdist itself."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    return min(5, 3 * (os.cpu_count() or 1))


def shares_a_stack(item: pytest.Item) -> bool:
    """The test uses a stack fixture of this suite's that outlives it (class, module or session scope)."""
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    ours = ("conftest", "test_")
    return any(
        chain[-1].scope in ("class", "module", "session") and chain[-1].func.__module__.startswith(ours)
        for chain in definitions.values()
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The stacks first, longest first (xdist hands out work in collection order), each stack's files in STACKS'
    order; then every other test that builds or runs containers or installs a project; then the rest. A stable
    sort: a file's tests keep their order."""
    unscheduled = [item.nodeid for item in items if shares_a_stack(item) and not stack_of(item.nodeid)]
    if unscheduled:
        # Handed out one by one, they would each start the stack on another worker, under the same names.
        raise pytest.UsageError(f"add these tests' file or class to STACKS in tests/conftest.py: {unscheduled}")
    order = list(dict.fromkeys(STACKS.values()))

    def rank(item: pytest.Item) -> tuple[int, int, int]:
        found = stack_of(item.nodeid)
        if found:
            position, stack = found
            return (0, order.index(stack), position)
        if item.get_closest_marker("e2e") or item.get_closest_marker("venv"):
            return (1, 0, 0)
        return (2, 0, 0)

    items.sort(key=rank)


# ---- A test class's stack (tests/test_e2e.py: each class sets `options`, the answers it bakes).


@pytest.fixture(scope="class")
def project(request, cookies_session):
    """The class's project, baked and with its four images built once."""
    require_engine()
    options = dict(request.cls.options)
    # Two runs of the same class on one engine would share compose project, volume and image names:
    options["project_name"] = stack_name(options["project_name"])
    project = Project(bake(cookies_session, domain_name=DOMAIN, **options))
    project.remove()  # whatever an interrupted earlier run left behind (volumes hold old passwords)
    for name, text in STRAYS.items():
        (project.path / name).write_text(text)
    started = time.monotonic()
    try:
        for target in ("appbuilder", "staticbuilder"):
            run(
                ["docker", "build", "--target", target, "-t", project.images[target], "."],
                cwd=project.path,
                timeout=1200,
            )
        run(["make", "build-live", "TAG=e2e"], cwd=project.path, timeout=1200)
        print(f"\n[e2e] {project.slug}: four targets built in {time.monotonic() - started:.0f}s")
        yield project
    finally:
        project.remove()


@pytest.fixture(scope="class")
def live(project):
    """The live stack after the documented deploy steps: migrate, then up."""
    started = time.monotonic()
    project.run_once("app", "python", "manage.py", "migrate", "--noinput")
    project.up_live()
    print(f"\n[e2e] {project.slug}: live stack migrated and healthy in {time.monotonic() - started:.0f}s")
    yield Browser(project.live_port)
    print(project.logs("compose.prod.yaml")[-6000:])  # shown by pytest when a test failed
    # Every profile: offsite's network too, when a test ran make backup (its profile off).
    project.live("--profile", "*", "down", "-v", "--remove-orphans", "--timeout", "5", check=False)


@pytest.fixture(scope="class")
def admin(request, project, live) -> str:
    """The superuser, made by the README's createsuperuser step; what it signs in with (its email address, or
    "admin" when users sign in by username)."""
    by_username = request.cls.options.get("username_type") == "username"
    project.run_once(
        "-e",
        f"DJANGO_SUPERUSER_PASSWORD={ADMIN_PASSWORD}",
        "app",
        "python",
        "manage.py",
        "createsuperuser",
        "--noinput",
        *(["--username", "admin"] if by_username else []),
        "--email",
        "admin@example.com",
    )
    return "admin" if by_username else "admin@example.com"


@pytest.fixture(scope="class")
def css_path(project, live) -> str:
    """The admin stylesheet, by the hashed name its login page links (for a visitor: a signed-in admin is sent
    on to the admin)."""
    login = Browser(project.live_port).get("/admin/password-reset/").text  # the admin's login is allauth's
    css = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login)
    assert css, "the admin should link its CSS by a hashed name"
    return css.group(1)


@pytest.fixture(scope="class")
def media_path(project, admin) -> str:
    """A document in the media volume, uploaded through the admin."""
    return upload(project, signed_in(project, admin), "e2e-media.txt", b"in the media volume\n")


# ---- The live stack with its edge, shared by tests/test_edge.py and tests/test_containment.py.

# Session stacks, by STACKS name: what removes each once its worker moves on to other tests (a session fixture
# would otherwise keep its containers and networks until the worker ends, holding Docker's address pools).
ENDINGS: dict[str, Callable[[], None]] = {}


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    found = stack_of(item.nodeid)
    if not found or found[1] not in ENDINGS or nextitem is None:  # the worker's last test: its session ends it
        return
    following = stack_of(nextitem.nodeid)
    if not following or following[1] != found[1]:
        ENDINGS.pop(found[1])()


@pytest.fixture(scope="session")
def edge_stack(cookies_session):
    """The default answers' live stack with its edge (Caddy) getting its certificate from pebble, after the deploy
    steps (build-live, migrate, up): baked, built and started once per worker (STACKS puts its tests on one)."""
    require_engine()
    project = EdgeProject(bake(cookies_session, project_name=stack_name("E2E Edge"), domain_name=DOMAIN))
    # The override first: removing what an interrupted earlier run left names it (the edge's volumes too).
    (project.path / "compose.pebble.yaml").write_text(PEBBLE)
    write_pebble_api_root(project.path)
    project.remove()
    try:
        started = time.monotonic()
        run(["make", "build-live", "TAG=e2e"], cwd=project.path, timeout=1200)
        project.edge("run", "--rm", "app", "python", "manage.py", "migrate", "--noinput", timeout=TIMEOUT)
        project.edge_mode()
        print(f"\n[edge] {project.slug}: built and up in {time.monotonic() - started:.0f}s")
        ENDINGS["edge"] = lambda: (print(project.logs(EDGE)[-8000:]), project.remove())  # logs: for a failure
        yield project
    finally:
        print(project.logs(EDGE)[-8000:])  # shown by pytest when a test failed
        project.remove()
