"""Issue 13, backups of the live stack: the backup service in compose.prod.yaml (backup.sh), under Docker
Compose as a user runs it. Its own project names ("E2E Backup ..."), so it never meets test_e2e.py's stacks.
Needs a Docker engine (skipped without one, except under CI where that is a failure)."""

from __future__ import annotations

import os
import re

import pytest
from test_e2e import DOMAIN, TIMEOUT, Browser, Project, engine_reachable, env_file, poll

from conftest import bake, clean_env, require, run

pytestmark = pytest.mark.e2e
STAMP = r"\d{8}T\d{6}Z"


class BackupProject(Project):
    """A baked project whose live commands also get the backup schedule's variables."""

    def __init__(self, path, **settings: str):
        super().__init__(path)
        self.settings = settings

    def env(self, file):
        env = super().env(file)
        return env if env.get("LIVE_PORT") is None else clean_env(**{**env, **self.settings})

    def backups(self) -> list[str]:
        listing = self.live("exec", "-T", "-u", "postgres", "backup", "ls", "-1A", "/backups").stdout
        return sorted(listing.split())

    def volume(self, name: str) -> str:
        return f"{self.slug}-live_{name}"

    def make(self, *args: str, check: bool = True, timeout: float = 900):
        """A Makefile target, as the user types it; its output (stdout and stderr) in .output."""
        result = run(["make", *args], cwd=self.path, env=self.env("compose.prod.yaml"), timeout=timeout, check=False)
        result.output = result.stdout + result.stderr
        if check and result.returncode != 0:
            pytest.fail(f"make {' '.join(args)} exited {result.returncode}\n{result.output[-4000:]}")
        return result


def baked(cookies_session, name: str, **options: str):
    require(engine_reachable(), "no Docker engine is reachable (run ../shared/container-engine/setup)")
    suffix = f" {os.environ['E2E_NAME_SUFFIX']}" if os.environ.get("E2E_NAME_SUFFIX") else ""
    # Sign-in by username: the admin is created and logs in as "admin" (test_e2e.py covers the email login).
    options = {"key_value_store": "none", "use_celery": "n", "username_type": "username", **options}
    return bake(cookies_session, project_name=f"E2E Backup {name}{suffix}", domain_name=DOMAIN, **options)


@pytest.fixture(scope="module")
def scheduled(cookies_session):
    # A backup every 3 seconds, keeping the last 2 and the newest of each of the last 2 weeks.
    path = baked(cookies_session, "Schedule", postgres_version="18")
    project = BackupProject(path, BACKUP_INTERVAL="3", BACKUP_KEEP_DAILY="2", BACKUP_KEEP_WEEKLY="2")
    project.remove()
    try:
        # Something in the media volume before the first backup.
        project.live("up", "--no-start", "--no-deps", "db", "backup")
        run(
            ["docker", "run", "--rm", "-v", f"{project.volume('media')}:/m", "--entrypoint", "sh", "postgres:18"]
            + ["-c", "mkdir -p /m/documents && echo kept > /m/documents/kept.txt"]
        )
        project.live("up", "-d", "--wait", "--wait-timeout", "120", "--no-deps", "db", "backup", timeout=TIMEOUT)
        yield project
    finally:
        print(project.logs("compose.prod.yaml", "backup")[-6000:])
        project.remove()


class TestScheduledBackups:
    """Part 1: the schedule fires, retention deletes the oldest, files are private, failures are loud.
    Only the database and the backup service run: no app image is needed for that."""

    def test_1_the_schedule_fires_and_retention_deletes_the_oldest(self, scheduled):
        # Two old backups in one ISO week (2025-W02): the weekly rule keeps its newest only.
        old = ("20250106T000000Z", "20250107T000000Z")
        touch = [
            f"/backups/{kind}-{stamp}.{ext}" for stamp in old for kind, ext in (("db", "dump"), ("media", "tar.gz"))
        ]
        scheduled.live("exec", "-T", "-u", "postgres", "backup", "touch", *touch)

        def pruned():
            names = scheduled.backups()
            dumps = [n for n in names if n.startswith("db-")]
            recent = [n for n in dumps if not n.startswith("db-2025")]
            return names if len(recent) == 2 and "db-20250106T000000Z.dump" not in names else None

        def taken():
            return len(re.findall(rf"backup: OK db-{STAMP}\.dump", scheduled.logs("compose.prod.yaml", "backup"))) >= 4

        poll(taken, 60, what="four scheduled backups")
        names = poll(pruned, 60, what="retention to leave two recent backups and one weekly")
        assert "db-20250107T000000Z.dump" in names and "media-20250107T000000Z.tar.gz" in names
        assert "media-20250106T000000Z.tar.gz" not in names
        for name in names:
            assert re.fullmatch(rf"(db-{STAMP}\.dump|media-{STAMP}\.tar\.gz)", name), name
        logs = scheduled.logs("compose.prod.yaml", "backup")
        assert "removed db-20250106T000000Z.dump" in logs
        # The two recent ones kept are the newest: every older recent one was removed.
        first = re.search(rf"backup: OK (db-{STAMP}\.dump)", logs).group(1)
        assert first not in names and f"removed {first}" in logs

    def test_2_backups_are_real_and_private(self, scheduled):
        newest = [n for n in scheduled.backups() if n.startswith("db-") and not n.startswith("db-2025")][-1]
        stamp = newest[3:-5]
        listing = scheduled.live(
            "exec", "-T", "-u", "postgres", "backup", "pg_restore", "--list", f"/backups/{newest}"
        ).stdout
        assert "Format: CUSTOM" in listing and re.search(r"Compression: (gzip|[1-9])", listing), listing[:600]
        media = scheduled.live(
            "exec",
            "-T",
            "-u",
            "postgres",
            "backup",
            "tar",
            "-xzOf",
            f"/backups/media-{stamp}.tar.gz",
            "./documents/kept.txt",
        ).stdout
        assert media == "kept\n"
        modes = scheduled.live(
            "exec", "-T", "-u", "postgres", "backup", "stat", "-c", "%a %U %n", "/backups", f"/backups/{newest}"
        ).stdout
        assert modes.split("\n")[:2] == ["700 postgres /backups", f"600 postgres /backups/{newest}"], modes

    def test_3_the_backup_service_is_locked_down(self, scheduled):
        secret_key = env_file(scheduled.path / ".envs/prod.env")["SECRET_KEY"]
        environment = scheduled.live("exec", "-T", "backup", "env").stdout
        assert secret_key not in environment and "DATABASE_URL" not in environment
        status = scheduled.live("exec", "-T", "backup", "cat", "/proc/1/status").stdout
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        assert int(fields["CapEff"], 16) == 0 and fields["Uid"].split()[0] != "0"
        assert fields["NoNewPrivs"].strip() == "1"
        assert scheduled.live("exec", "-T", "backup", "touch", "/probe", check=False).returncode != 0

    def test_4_a_failed_backup_is_loud(self, scheduled):
        assert scheduled.health("compose.prod.yaml", "backup") == "healthy"
        scheduled.live("stop", "db")
        try:
            now = scheduled.live(
                "exec", "-T", "-u", "postgres", "backup", "sh", "/usr/local/bin/backup.sh", "now", check=False
            )
            assert now.returncode != 0
            assert re.search(r"backup: FAILED: pg_dump of \S+ on db failed", now.stdout + now.stderr), now
            poll(
                lambda: scheduled.health("compose.prod.yaml", "backup") == "unhealthy",
                60,
                what="the backup service to turn unhealthy",
            )
            assert "backup: FAILED" in scheduled.logs("compose.prod.yaml", "backup")
            assert not [n for n in scheduled.backups() if n.startswith(".")], "a failed attempt left a partial file"
        finally:
            scheduled.live("start", "db")
        poll(lambda: scheduled.health("compose.prod.yaml", "backup") == "healthy", 90, what="the backup to recover")


PASSWORD = "e2e-Password-1"


def login(project: BackupProject) -> Browser | None:
    """A new visitor logs into the admin: the browser, or None when the login is refused."""
    browser = Browser(project.live_port)
    response = browser.post_form(
        "/admin/login/?next=/admin/", {"username": "admin", "password": PASSWORD, "next": "/admin/"}
    )
    return browser if response.status_code == 302 else None


def documents(browser: Browser) -> dict[str, str]:
    """The home page's document links: title -> media URL."""
    page = browser.get("/").text
    return {title: link for link, title in re.findall(r'<a href="(/media/documents/[^"]+)">([^<]+)</a>', page)}


@pytest.fixture(scope="module")
def restorable(cookies_session):
    """A live stack on PostgreSQL 17, deployed as the README says, with an admin and an uploaded document."""
    path = baked(cookies_session, "Restore", postgres_version="17", python_version="3.13", django_version="6.1")
    project = BackupProject(path)
    project.remove()
    volumes = [project.volume(f"postgres{major}_data") for major in (17, 18)]
    run(["docker", "volume", "rm", "-f", *volumes], check=False)
    try:
        project.make("build-live", timeout=1800)
        project.make("deploy", timeout=TIMEOUT + 300)
        project.run_once(
            "-e",
            f"DJANGO_SUPERUSER_PASSWORD={PASSWORD}",
            "app",
            "python",
            "manage.py",
            "createsuperuser",
            "--noinput",
            "--username",
            "admin",
            "--email",
            "admin@example.com",
        )
        browser = login(project)
        assert browser, project.logs("compose.prod.yaml", "app")
        for title in ("Kept row one", "Kept row two"):
            added = browser.post_form(
                f"/admin/{project.slug}/document/add/",
                {"title": title, "_save": "Save"},
                files={"file": ("kept.txt", f"{title}: uploaded before the backup\n".encode(), "text/plain")},
            )
            assert added.status_code == 302, added.text[:1000]
        yield project
    finally:
        print(project.logs("compose.prod.yaml")[-6000:])
        project.remove()
        # pg-upgrade leaves the old major's volume alone, and compose.prod.yaml no longer names it.
        run(["docker", "volume", "rm", "-f", *volumes], check=False)
        run(["docker", "rmi", "-f", f"{project.slug}-app:e2e", f"{project.slug}-static:e2e"], check=False)


class TestRestore:
    """Part 2: make backup / backups / restore, the round trip through `down -v`, and the refusals."""

    def test_1_round_trip_through_down_v(self, restorable):
        project = restorable
        before = documents(Browser(project.live_port))
        assert set(before) == {"Kept row one", "Kept row two"}, before
        taken = project.make("backup")
        name = re.search(rf"OK (db-{STAMP}\.dump)", taken.output).group(1)
        assert name in project.make("backups").output

        project.live("down", "-v", "--timeout", "5")
        project.make("deploy", timeout=TIMEOUT + 300)
        assert documents(Browser(project.live_port)) == {} and login(project) is None, "the stack should be empty"

        restored = project.make("restore", "CONFIRM=yes", timeout=TIMEOUT + 300)
        assert f"restored {name}" in restored.output
        browser = login(project)
        assert browser, "the admin's login should be back"
        assert documents(browser) == before
        for title, link in before.items():
            media = browser.get(link)
            assert media.status_code == 200 and media.content == f"{title}: uploaded before the backup\n".encode()
        for service in ("app", "nginx", "backup", "db"):
            assert project.health("compose.prod.yaml", service) == "healthy", service

    def test_2_restore_wants_a_confirmation(self, restorable):
        before = documents(Browser(restorable.live_port))
        refused = restorable.make("restore", check=False)
        assert refused.returncode != 0
        assert "Nothing was changed. To go ahead: make restore NAME=latest CONFIRM=yes" in refused.output
        assert documents(Browser(restorable.live_port)) == before

    def test_3_missing_and_corrupt_backups_are_refused_and_nothing_changes(self, restorable):
        project = restorable
        browser = login(project)
        before = documents(browser)
        name = project.make("backups").output.split("db-", 1)[1].split()[0]
        stamp = name.removesuffix(".dump")
        # A file of garbage, and the newest backup cut in half, each beside a good media archive.
        fake = (
            "cd /backups && echo garbage > db-20000101T000000Z.dump"
            f" && cp media-{stamp}.tar.gz media-20000101T000000Z.tar.gz"
            f" && head -c $(($(stat -c %s db-{stamp}.dump) / 2)) db-{stamp}.dump > db-20000102T000000Z.dump"
            f" && cp media-{stamp}.tar.gz media-20000102T000000Z.tar.gz"
        )
        project.live("exec", "-T", "-u", "postgres", "backup", "sh", "-c", fake)
        app = project.inspect(project.container("compose.prod.yaml", "app"))["State"]["StartedAt"]
        corrupt = "is not a complete pg_dump archive (corrupt or truncated)"
        cases = {
            "db-19990101T000000Z.dump": "no backup db-19990101T000000Z.dump in /backups (make backups lists them)",
            "db-20000101T000000Z.dump": f"db-20000101T000000Z.dump {corrupt}",
            "20000102T000000Z": f"db-20000102T000000Z.dump {corrupt}",
        }
        for bad, message in cases.items():
            result = project.make("restore", f"NAME={bad}", "CONFIRM=yes", check=False)
            assert result.returncode != 0 and message in result.output, result.output[-3000:]
            assert "nothing was changed" in result.output
        assert project.inspect(project.container("compose.prod.yaml", "app"))["State"]["StartedAt"] == app, (
            "a refused restore should not stop the app"
        )
        assert documents(browser) == before and browser.get("/readyz").status_code == 200

    def test_4_pg_upgrade_moves_the_data_from_17_to_18_and_keeps_the_old_volume(self, restorable):
        """Part 3: make pg-upgrade; bad input first (nothing changes), then 17 to 18 for real."""
        project = restorable
        before = documents(Browser(project.live_port))
        compose = (project.path / "compose.prod.yaml").read_text()
        for args, message in {
            ("TO=18",): "Nothing was changed. To go ahead: make pg-upgrade TO=18 CONFIRM=yes",
            ("TO=", "CONFIRM=yes"): "usage: make pg-upgrade TO=<major> CONFIRM=yes (the live stack runs PostgreSQL 17)",
            ("TO=16", "CONFIRM=yes"): "the live stack runs PostgreSQL 17: TO must be a later major",
        }.items():
            refused = project.make("pg-upgrade", *args, check=False)
            assert refused.returncode != 0 and message in refused.output, refused.output[-3000:]
        assert (project.path / "compose.prod.yaml").read_text() == compose
        assert project.health("compose.prod.yaml", "app") == "healthy"

        upgraded = project.make("pg-upgrade", "TO=18", "CONFIRM=yes", timeout=TIMEOUT + 600)
        old = project.volume("postgres17_data")
        assert f"The old data stays in the volume {old}" in upgraded.output
        assert old in run(["docker", "volume", "ls", "-q"]).stdout, "the old volume should be kept"
        # PostgreSQL 18's layout: the new volume at /var/lib/postgresql, the cluster in 18/docker.
        mounts = project.inspect(project.container("compose.prod.yaml", "db"))["Mounts"]
        data = [(m["Name"], m["Destination"]) for m in mounts if m["Type"] == "volume"]
        assert data == [(project.volume("postgres18_data"), "/var/lib/postgresql")], data
        version = project.live("exec", "-T", "db", "cat", "/var/lib/postgresql/18/docker/PG_VERSION").stdout
        assert version.strip() == "18"
        server = project.live("exec", "-T", "db", "psql", "-U", "postgres", "-tAc", "SHOW server_version_num").stdout
        assert server.strip().startswith("18")
        browser = login(project)
        assert browser and documents(browser) == before
        for service in ("app", "nginx", "backup", "db"):
            assert project.health("compose.prod.yaml", service) == "healthy", service
        assert "image: postgres:18" in (project.path / "compose.prod.yaml").read_text()
        # The app still connects as its own role, which owns what was restored.
        owner = project.live(
            "exec",
            "-T",
            "db",
            "psql",
            "-U",
            "postgres",
            "-d",
            project.slug,
            "-tAc",
            f"SELECT tableowner FROM pg_tables WHERE tablename = '{project.slug}_document'",
        ).stdout
        assert owner.strip() == project.slug
