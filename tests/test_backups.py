"""Issue 13, backups of the live stack: the backup service in compose.prod.yaml (backup.sh), under Docker
Compose as a user runs it. Its own project names ("E2E Backup ..."), so it never meets test_e2e.py's stacks.
Needs a Docker engine (skipped without one, except under CI where that is a failure)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from support import (
    DOMAIN,
    LIVE,
    TIMEOUT,
    BackupProject,
    Browser,
    S3Server,
    bake,
    env_file,
    poll,
    require_engine,
    run,
    sign_in,
    stack_name,
    upload,
)

pytestmark = pytest.mark.e2e
STAMP = r"\d{8}T\d{6}Z"
# A backup's three files (backup.sh): its encrypted dump, its encrypted media, and its seal.
BACKUP_FILE = rf"(db-{STAMP}\.dump\.age|media-{STAMP}\.tar\.gz\.age|seal-{STAMP}\.txt)"


def baked(cookies_session, name: str, **options: str):
    require_engine()
    # Sign-in by username: the admin is created and logs in as "admin" (test_e2e.py covers the email login).
    options = {"key_value_store": "none", "use_celery": "n", "username_type": "username", **options}
    return bake(cookies_session, project_name=stack_name(f"E2E Backup {name}"), domain_name=DOMAIN, **options)


@pytest.fixture(scope="module")
def scheduled(cookies_session):
    # A backup every 3 seconds, keeping the last 2 and the newest of each of the last 2 weeks.
    path = baked(cookies_session, "Schedule", postgres_version="18")
    project = BackupProject(path, BACKUP_INTERVAL="3", BACKUP_KEEP_DAILY="2", BACKUP_KEEP_WEEKLY="2")
    project.remove()
    try:
        # The backup service's image, as make build-live builds it (no app image is needed here).
        run(["docker", "build", "--target", "backup", "-t", project.images["backup"], "."], cwd=path, timeout=900)
        # Something in the media volume before the first backup.
        project.live("up", "--no-start", "--no-deps", "db", "backup")
        run(
            ["docker", "run", "--rm", "-v", f"{project.volume('media')}:/m", "--entrypoint", "sh", "postgres:18"]
            + ["-c", "mkdir -p /m/documents && echo kept > /m/documents/kept.txt"]
        )
        project.live(
            "up", "-d", "--wait", "--wait-timeout", str(TIMEOUT), "--no-deps", "db", "backup", timeout=TIMEOUT + 60
        )
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
        kinds = (("db", "dump.age"), ("media", "tar.gz.age"), ("seal", "txt"))
        touch = [f"/backups/{kind}-{stamp}.{ext}" for stamp in old for kind, ext in kinds]
        scheduled.live("exec", "-T", "backup", "touch", *touch)

        def pruned():
            names = scheduled.backups()
            dumps = [n for n in names if n.startswith("db-")]
            recent = [n for n in dumps if not n.startswith("db-2025")]
            return names if len(recent) == 2 and "db-20250106T000000Z.dump.age" not in names else None

        def taken():
            logs = scheduled.logs("compose.prod.yaml", "backup")
            return len(re.findall(rf"backup: OK db-{STAMP}\.dump\.age", logs)) >= 4

        poll(taken, 60, what="four scheduled backups")
        names = poll(pruned, 60, what="retention to leave two recent backups and one weekly")
        kept = {"db-20250107T000000Z.dump.age", "media-20250107T000000Z.tar.gz.age", "seal-20250107T000000Z.txt"}
        assert kept <= set(names)
        assert not {n for n in names if "20250106T000000Z" in n}, names
        for name in names:
            assert re.fullmatch(BACKUP_FILE, name), name
        logs = scheduled.logs("compose.prod.yaml", "backup")
        assert "removed db-20250106T000000Z.dump.age" in logs
        # The two recent ones kept are the newest: every older recent one was removed.
        first = re.search(rf"backup: OK (db-{STAMP}\.dump\.age)", logs).group(1)
        assert first not in names and f"removed {first}" in logs

    def test_2_backups_are_encrypted_real_and_private(self, scheduled):
        """Each backup is age-encrypted at rest (no dump, no password hash readable on the host), decrypts with
        the baked private key alone into a real pg_dump archive and the media, and is root's, closed to others."""
        # One exec for every look at the newest backup: with a backup every 3 s and two kept, it is deleted
        # seconds after it was taken, sooner than several execs on a busy machine would take. The private key
        # comes on standard input into the container's private /tmp, as make restore gives it.
        look = """
            cat > /tmp/key && cd /backups && newest=$(ls db-2*.dump.age | grep -v '^db-2025' | tail -n 1) &&
            stamp=${newest#db-} && stamp=${stamp%.dump.age} && echo "$newest" &&
            head -c 21 "$newest" && echo && grep -c PGDMP "$newest" || true &&
            age -d -i /tmp/key "$newest" | pg_restore --list && echo ---- &&
            age -d -i /tmp/key "media-$stamp.tar.gz.age" | tar -xzOf - ./documents/kept.txt | sed 's/^/media: /' &&
            stat -c '%a %U %n' /backups "/backups/$newest" "/backups/seal-$stamp.txt"
        """
        output = scheduled.piped(scheduled.identity, "exec", "-T", "backup", "sh", "-c", look).stdout.decode()
        newest, header, plain, rest = output.split("\n", 3)
        assert re.fullmatch(rf"db-{STAMP}\.dump\.age", newest), output[:600]
        assert header == "age-encryption.org/v1" and plain == "0", "the dump on disk is not encrypted"
        listing, looked = rest.split("----\n", 1)
        assert "Format: CUSTOM" in listing and re.search(r"Compression: (gzip|[1-9])", listing), listing[:600]
        stamp = newest[3:19]
        assert looked.split("\n")[:4] == [
            "media: kept",
            "700 root /backups",
            f"600 root /backups/{newest}",
            f"600 root /backups/seal-{stamp}.txt",
        ], looked

    def test_3_the_backup_service_is_locked_down(self, scheduled):
        """No secret of the app's, no private key; root (the backups' owner) without a single capability."""
        secret_key = env_file(scheduled.path / ".envs/prod.env")["SECRET_KEY"]
        environment = scheduled.live("exec", "-T", "backup", "env").stdout
        assert secret_key not in environment and "DATABASE_URL" not in environment
        assert "BACKUP_RECIPIENT=age1" in environment and "AGE-SECRET-KEY" not in environment
        fields = scheduled.process_status(LIVE, "backup")
        assert fields["Uid"].split()[0] == "0" and int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0
        assert fields["NoNewPrivs"].strip() == "1"
        assert scheduled.live("exec", "-T", "backup", "touch", "/probe", check=False).returncode != 0

    def test_4_a_failed_backup_is_loud(self, scheduled):
        assert scheduled.health("compose.prod.yaml", "backup") == "healthy"
        scheduled.live("stop", "db")
        try:
            now = scheduled.live("exec", "-T", "backup", "sh", "/usr/local/bin/backup.sh", "now", check=False)
            assert now.returncode != 0
            assert re.search(r"backup: FAILED: pg_dump of \S+ on db failed", now.stdout + now.stderr), now
            poll(
                lambda: scheduled.health("compose.prod.yaml", "backup") == "unhealthy",
                60,
                what="the backup service to turn unhealthy",
            )
            # `now` above wrote the failed status itself, so the healthcheck can turn before the loop's own
            # next attempt (every 3 s) has failed and logged: wait for that line rather than race it.
            poll(
                lambda: "backup: FAILED" in scheduled.logs("compose.prod.yaml", "backup"),
                60,
                what="the scheduled loop to log its failed attempt",
            )
            # The loop keeps trying every 3 s, and each attempt's partial file lives until pg_dump gives up.
            poll(
                lambda: not [n for n in scheduled.backups() if n.endswith(".part")],
                30,
                what="no partial file left by a failed attempt",
            )
        finally:
            scheduled.live("start", "db")
        poll(lambda: scheduled.health("compose.prod.yaml", "backup") == "healthy", 90, what="the backup to recover")


PASSWORD = "e2e-Password-1"


def login(project: BackupProject) -> Browser | None:
    """A new visitor logs into the admin: the browser, or None when the login is refused."""
    return sign_in(project.live_port, "admin", PASSWORD)


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
        images = [f"{project.slug}-{image}:e2e" for image in ("app", "static", "offsite")]
        # make build-live's backup image, and the one pg-upgrade built for 18.
        images += [f"{project.slug}-backup:pg{major}" for major in (17, 18)]
        run(["docker", "rmi", "-f", *images], check=False)


def stack_files(project) -> dict[str, str]:
    """What make pg-upgrade may change (postgres.env, the major) and what it must not (the compose files)."""
    return {name: (project.path / name).read_text() for name in ("compose.prod.yaml", "compose.yaml", "postgres.env")}


# What an attacker plants: a dump whose table's CHECK constraint calls a function that runs a program on the
# database server (COPY ... TO PROGRAM: superusers only). It runs only outside the database it was made in, so
# making it here runs nothing. Run in the db container; pg_dump's archive on stdout.
EVIL_DUMP = r"""
psql -q -U postgres -v ON_ERROR_STOP=1 -d postgres >/dev/null 2>&1 <<'SQL'
DROP DATABASE IF EXISTS evil;
CREATE DATABASE evil;
\c evil
CREATE FUNCTION pwn(x int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF current_database() <> 'evil' THEN
    EXECUTE 'COPY (SELECT current_user) TO PROGRAM ''cat > /tmp/pwned''';
  END IF;
  RETURN true;
END $$;
CREATE TABLE planted (x int CHECK (pwn(x)));
INSERT INTO planted VALUES (1);
SQL
pg_dump -U postgres -Fc evil
"""

# Seals a backup as backup.sh does (run in the backup container, in /backups, with the stamp as $1): with the
# key in SEAL_KEY, or the stack's own BACKUP_AUTH_KEY.
SEAL = r"""
cd /backups && for f in db-$1.dump.age media-$1.tar.gz.age; do
  printf '%s  %s\n' "$(sha256sum < "$f" | cut -d ' ' -f 1)" "$f"
done > /tmp/sums
export BACKUP_AUTH_KEY="${SEAL_KEY:-$BACKUP_AUTH_KEY}"
mac=$(perl -MDigest::SHA=hmac_sha256_hex -e 'local $/; print hmac_sha256_hex(<STDIN>, $ENV{BACKUP_AUTH_KEY})' \
  </tmp/sums)
{ cat /tmp/sums; echo "hmac-sha256 $mac"; } > "seal-$1.txt"
"""


def seal(project: BackupProject, stamp: str, key: str | None = None) -> None:
    """Seal the backup STAMP in the stack's /backups, with KEY or with the stack's own key."""
    env = ["-e", f"SEAL_KEY={key}"] if key else []
    project.live("exec", "-T", *env, "backup", "sh", "-c", SEAL, "seal", stamp)


class TestRestore:
    """Part 2: make backup / backups / restore, the round trip through `down -v`, and the refusals."""

    def test_1_round_trip_through_down_v(self, restorable):
        project = restorable
        before = documents(Browser(project.live_port))
        assert set(before) == {"Kept row one", "Kept row two"}, before
        taken = project.make("backup")
        name = re.search(rf"OK (db-{STAMP}\.dump\.age)", taken.output).group(1)
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
        # Only make's command line counts: a CONFIRM=yes (or a NAME) left in the shell's environment does not.
        env = {**restorable.env("compose.prod.yaml"), "CONFIRM": "yes", "NAME": "host-name"}
        left = run(["make", "restore"], cwd=restorable.path, env=env, check=False)
        assert left.returncode != 0
        assert "Nothing was changed. To go ahead: make restore NAME=latest CONFIRM=yes" in left.stdout + left.stderr
        assert documents(Browser(restorable.live_port)) == before

    def test_3_planted_altered_and_unreadable_backups_are_refused_and_nothing_changes(self, restorable):
        """Each way a backup can be bad, refused with a message that says why, before anything stops."""
        project = restorable
        browser = login(project)
        before = documents(browser)
        name = re.search(rf"db-{STAMP}\.dump\.age", project.make("backups").output).group(0)
        stamp = name[3:19]

        def copy(to: str, kinds: str = "db-X.dump.age media-X.tar.gz.age seal-X.txt") -> str:
            return f"for k in {kinds}; do cp $(echo $k | sed s/X/{stamp}/) $(echo $k | sed s/X/{to}/); done"

        # As an intruder with write access to /backups (or the bucket) would leave them: a file encrypted to the
        # public key without a seal; the newest backup cut in half beside a copy of its seal; a whole backup
        # under another name (its seal names the other stamp's files); a copy re-sealed with another key.
        bad = (
            "cd /backups && echo garbage | age -r $BACKUP_RECIPIENT -o db-20000101T000000Z.dump.age"
            f" && cp media-{stamp}.tar.gz.age media-20000101T000000Z.tar.gz.age"
            f" && {copy('20000102T000000Z')} && head -c $(($(stat -c %s db-{stamp}.dump.age) / 2))"
            f" db-{stamp}.dump.age > db-20000102T000000Z.dump.age"
            f" && {copy('20000103T000000Z')} && {copy('20000104T000000Z', 'db-X.dump.age media-X.tar.gz.age')}"
            # A whole backup but for its media archive (deleted, or lost on the way).
            f" && {copy('20000105T000000Z', 'db-X.dump.age seal-X.txt')}"
        )
        project.live("exec", "-T", "backup", "sh", "-c", bad)
        seal(project, "20000104T000000Z", key="not-this-stacks-key")
        app = project.inspect(project.container("compose.prod.yaml", "app"))["State"]["StartedAt"]
        altered = "is not the file this stack sealed (altered, truncated or swapped since). Refused"
        cases = {
            "db-19990101T000000Z.dump.age": "no backup db-19990101T000000Z.dump.age in /backups (make backups lists",
            "db-20000101T000000Z.dump.age": "db-20000101T000000Z.dump.age has no seal (seal-20000101T000000Z.txt)",
            "20000102T000000Z": f"media-20000102T000000Z.tar.gz.age {altered}",
            "db-20000103T000000Z.dump": f"media-20000103T000000Z.tar.gz.age {altered}",
            "20000104T000000Z": "seal was not made with this stack's BACKUP_AUTH_KEY (planted, or sealed elsewhere)",
            "db-20000105T000000Z.dump.age": (
                "media-20000105T000000Z.tar.gz.age is missing beside db-20000105T000000Z.dump.age: nothing was changed"
            ),
            # FROM: offsite or nothing; off-site copies are off on this stack.
            f"{name} FROM=ofsite": "FROM=ofsite: the only other place is FROM=offsite. Nothing was changed",
            f"{name} FROM=offsite": "FROM=offsite, but off-site copies are off (no S3_BUCKET in",
            # Not a backup's name: refused before a shell or a path sees it.
            "x;touch /tmp/pwned": "NAME=x;touch /tmp/pwned is not a backup's name",
            "../../etc/passwd": "NAME=../../etc/passwd is not a backup's name",
            "1/../x\n20240101T000000Z": "is not a backup's name",  # a second line of the right shape
        }
        for bad_name, message in cases.items():
            bad_name, _, place = bad_name.partition(" FROM=")
            where = [f"FROM={place}"] if place else []
            result = project.make("restore", f"NAME={bad_name}", *where, "CONFIRM=yes", check=False)
            assert result.returncode != 0 and message in result.output, (bad_name, result.output[-3000:])
            assert "othing was changed" in result.output
        assert not (project.path / "pwned").exists() and not Path("/tmp/pwned").exists()
        # The private key: missing, or another pair's.
        missing = project.make("restore", "CONFIRM=yes", "BACKUP_IDENTITY=/nowhere/key.txt", check=False)
        assert missing.returncode != 0
        assert "the backups' private key is missing: BACKUP_IDENTITY=/nowhere/key.txt is no readable file" in (
            missing.output
        )
        other = project.path.parent / f"{project.slug}-other-identity.txt"
        other.write_bytes(project.piped(b"", "exec", "-T", "backup", "age-keygen").stdout)
        wrong = project.make("restore", f"NAME={name}", "CONFIRM=yes", f"BACKUP_IDENTITY={other}", check=False)
        assert wrong.returncode != 0 and f"the private key given does not decrypt {name}" in wrong.output
        assert project.inspect(project.container("compose.prod.yaml", "app"))["State"]["StartedAt"] == app, (
            "a refused restore should not stop the app"
        )
        assert documents(browser) == before and browser.get("/readyz").status_code == 200
        project.live("exec", "-T", "backup", "sh", "-c", "rm -f /backups/*-2000010[1-5]T000000Z.*")

    def test_3b_a_dump_that_runs_code_as_the_superuser_is_neither_restored_nor_run(self, restorable):
        """Issue #20's exploit: a dump whose table's CHECK constraint calls a function that runs COPY ... TO
        PROGRAM. Restored as the superuser (as make restore restored before) it runs a command in the database's
        container; planted as the newest backup, or dated in the future, it is refused; and even sealed with the
        stack's own key (as if that leaked), the restore runs as the app's role and the command never runs."""
        project = restorable
        browser = login(project)
        before = documents(browser)
        evil = project.piped(EVIL_DUMP.encode(), "exec", "-T", "db", "sh").stdout
        assert evil.startswith(b"PGDMP"), evil[:200]

        # First, the attack working: pg_restore as the superuser runs the command (as postgres).
        restore_as_superuser = (
            "createdb -U postgres scratch && pg_restore -U postgres -d scratch; cat /tmp/pwned;"
            " rm -f /tmp/pwned; dropdb -U postgres scratch"
        )
        worked = project.piped(evil, "exec", "-T", "db", "sh", "-c", restore_as_superuser).stdout.decode()
        assert worked.strip() == "postgres", worked

        def plant(stamp: str) -> None:
            """The dump and an empty media archive, encrypted to the stack's public key, as anyone can."""
            script = (
                f"cd /backups && age -r $BACKUP_RECIPIENT -o db-{stamp}.dump.age"
                f" && tar -czf - -T /dev/null | age -r $BACKUP_RECIPIENT -o media-{stamp}.tar.gz.age"
            )
            project.piped(evil, "exec", "-T", "backup", "sh", "-c", script)

        def pwned() -> bool:
            return project.live("exec", "-T", "db", "ls", "/tmp/pwned", check=False).returncode == 0

        soon = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + 60))
        plant("29991231T000000Z")  # the trick that worked before: the highest name is "latest"
        plant(soon)  # the newest real-looking one, sealed with a key the attacker guessed
        seal(project, soon, key="an-attackers-guess")
        assert "ignored: db-29991231T000000Z.dump.age (dated in the future" in project.make("backups").output
        refused = project.make("restore", "CONFIRM=yes", check=False)  # NAME=latest
        assert refused.returncode != 0, refused.output[-3000:]
        assert f"db-{soon}.dump.age's seal was not made with this stack's BACKUP_AUTH_KEY" in refused.output
        future = project.make("restore", "NAME=db-29991231T000000Z.dump.age", "CONFIRM=yes", check=False)
        assert future.returncode != 0 and "has no seal" in future.output, future.output[-3000:]
        assert not pwned() and documents(browser) == before

        # A leaked sealing key: the seal holds, and the restore itself, as the app's role, stops the attack.
        seal(project, soon)
        leaked = project.make("restore", "CONFIRM=yes", check=False, timeout=TIMEOUT + 300)
        assert leaked.returncode != 0, leaked.output[-3000:]
        assert 'only roles with privileges of the "pg_execute_server_program" role' in leaked.output.lower()
        assert "the live database was not changed" in leaked.output
        assert not pwned(), "the planted dump ran a command in the database's container"
        browser = login(project)
        assert browser and documents(browser) == before
        for service in ("app", "nginx", "backup", "db"):
            assert project.health("compose.prod.yaml", service) == "healthy", service
        project.live("exec", "-T", "backup", "sh", "-c", f"rm -f /backups/*-29991231T000000Z.* /backups/*-{soon}.*")

    def test_3c_pg_upgrade_refuses_a_leftover_volume_and_rolls_back_a_failed_restore(self, restorable):
        """make pg-upgrade's two ways out: a volume of the target major left by an earlier attempt (refused, nothing
        stopped), and a restore into the new major that fails (here: another key pair's private key), which puts
        postgres.env back, removes the new volume and brings PostgreSQL 17 back with its data."""
        project = restorable
        browser = login(project)
        before = documents(browser)
        files = stack_files(project)
        app = project.inspect(project.container("compose.prod.yaml", "app"))["State"]["StartedAt"]
        new = project.volume("postgres18_data")
        run(["docker", "volume", "create", new])
        try:
            refused = project.make("pg-upgrade", "TO=18", "CONFIRM=yes", check=False, timeout=TIMEOUT + 600)
        finally:
            run(["docker", "volume", "rm", "-f", new], check=False)
        assert refused.returncode != 0, refused.output[-3000:]
        assert f"pg-upgrade: the volume {new} exists already (an earlier attempt?)" in refused.output
        assert f"docker volume rm {new}, and run this again. Nothing was changed" in refused.output
        assert stack_files(project) == files
        assert project.inspect(project.container("compose.prod.yaml", "app"))["State"]["StartedAt"] == app

        other = project.path.parent / f"{project.slug}-upgrade-identity.txt"
        other.write_bytes(project.piped(b"", "exec", "-T", "backup", "age-keygen").stdout)
        failed = project.make(
            "pg-upgrade", "TO=18", "CONFIRM=yes", f"BACKUP_IDENTITY={other}", check=False, timeout=TIMEOUT + 600
        )
        assert failed.returncode != 0, failed.output[-3000:]
        assert (
            "pg-upgrade: FAILED: the restore into PostgreSQL 18 failed. Back to PostgreSQL 17 (postgres.env"
            " restored; its volume was never touched)" in failed.output
        ), failed.output[-3000:]
        assert stack_files(project) == files
        assert not (project.path / "postgres.env.pg17").exists()
        assert new not in run(["docker", "volume", "ls", "-q"]).stdout, "the failed attempt's volume should be gone"
        server = project.live("exec", "-T", "db", "psql", "-U", "postgres", "-tAc", "SHOW server_version_num").stdout
        assert server.strip().startswith("17"), server
        browser = login(project)
        assert browser and documents(browser) == before
        for service in ("app", "nginx", "backup", "db"):
            assert project.health("compose.prod.yaml", service) == "healthy", service

    def test_3d_a_media_swap_that_fails_changes_neither_the_media_nor_the_database(self, restorable):
        """A live media folder the app's user cannot move (a directory root made, say): the swap fails, and the
        database, restored before the media were swapped until now, is the live one still, as are the media."""
        project = restorable
        browser = login(project)
        name = re.search(rf"OK (db-{STAMP}\.dump\.age)", project.make("backup").output).group(1)
        upload(project, browser, "after.txt", b"added after the backup\n", title="Added after the backup")
        before = documents(browser)
        media = project.volume("media")
        app_image = project.inspect(project.container("compose.prod.yaml", "app"))["Config"]["Image"]
        as_root = [
            "docker",
            "run",
            "--rm",
            "-u",
            "0",
            "-v",
            f"{media}:/srv/media",
            "--entrypoint",
            "sh",
            app_image,
            "-c",
        ]
        run([*as_root, "mkdir /srv/media/root-made && echo kept > /srv/media/root-made/file.txt"])
        try:
            failed = project.make("restore", f"NAME={name}", "CONFIRM=yes", check=False, timeout=TIMEOUT + 300)
            assert failed.returncode != 0, failed.output[-3000:]
            assert "the media could not be swapped in" in failed.output, failed.output[-3000:]
            assert "the media were not changed" in failed.output
            assert "make restore: FAILED (above): the live database and media are as they were" in failed.output
            listing = run([*as_root, "cd /srv/media && find . -type f | sort && cat root-made/file.txt"]).stdout
        finally:
            run([*as_root, "rm -rf /srv/media/root-made"])
        assert "./root-made/file.txt" in listing and listing.endswith("kept\n"), listing
        assert ".restoring" not in listing and ".replaced" not in listing, listing
        browser = login(project)
        assert browser and documents(browser) == before, "the database should be the live one still"
        for title, link in before.items():
            assert browser.get(link).status_code == 200, (title, link)
        for service in ("app", "nginx", "backup", "db"):
            assert project.health("compose.prod.yaml", service) == "healthy", service

    def test_4_pg_upgrade_moves_the_data_from_17_to_18_and_keeps_the_old_volume(self, restorable):
        """Part 3: make pg-upgrade; bad input first (nothing changes), then 17 to 18 for real."""
        project = restorable
        before = documents(Browser(project.live_port))
        files = stack_files(project)
        for args, message in {
            ("TO=18",): "Nothing was changed. To go ahead: make pg-upgrade TO=18 CONFIRM=yes",
            ("TO=", "CONFIRM=yes"): "usage: make pg-upgrade TO=<major> CONFIRM=yes (the live stack runs PostgreSQL 17)",
            ("TO=16", "CONFIRM=yes"): "the live stack runs PostgreSQL 17: TO must be a later major",
        }.items():
            refused = project.make("pg-upgrade", *args, check=False)
            assert refused.returncode != 0 and message in refused.output, refused.output[-3000:]
        assert stack_files(project) == files
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
        # One variable changed, in the committed postgres.env; the compose files were not edited.
        assert "\nPOSTGRES_MAJOR=18\n" in (project.path / "postgres.env").read_text()
        assert stack_files(project)["compose.prod.yaml"] == files["compose.prod.yaml"]
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


# The S3-compatible server for the off-site tests: support.MOTO_IMAGE.
BUCKET, PREFIX = "e2e-backups", "nightly"


class Storage(S3Server):
    """moto's server on the offsite service's network only (no published port), with authentication on: its
    first three requests create a user and that user's keys, every later one must be signed with them."""

    def __init__(self, project: BackupProject):
        # offsite's way out
        super().__init__(f"{project.slug}-s3", f"{project.slug}-live_offsite", "-e", "INITIAL_NO_AUTH_ACTION_COUNT=3")
        self.project = project

    def start(self) -> None:
        # Off-site copies are still off (an optional service, its profile off): its network made as turning them on
        # would make it.
        self.project.live("--profile", "offsite", "up", "--no-start", "offsite")
        super().start(self.project.path.parent / "s3-server")
        keys = self.python(
            "import json; iam = boto3.client('iam', **kw);"
            "iam.create_user(UserName='backups');"
            "key = iam.create_access_key(UserName='backups')['AccessKey'];"
            "iam.put_user_policy(UserName='backups', PolicyName='s3', PolicyDocument=json.dumps("
            "{'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': 's3:*', 'Resource': '*'}]}));"
            "print(key['AccessKeyId'], key['SecretAccessKey'])"
        ).stdout.split()
        self.keys = (keys[0], keys[1])
        self.python(f"s3.create_bucket(Bucket='{BUCKET}')")

    def configure(self, **changes: str) -> None:
        """.envs/offsite.env as a user fills it in (the bucket's settings, then these changes), and the
        offsite service restarted with it."""
        settings = {
            "S3_BUCKET": BUCKET,
            "S3_PREFIX": PREFIX,
            "AWS_ACCESS_KEY_ID": self.keys[0],
            "AWS_SECRET_ACCESS_KEY": self.keys[1],
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
            **changes,
        }
        path = self.project.path / ".envs/offsite.env"
        text = path.read_text()
        for key, value in settings.items():
            text = re.sub(rf"(?m)^{key}=.*$", lambda _, line=f"{key}={value}": line, text)
        path.write_text(text)
        self.project.live("up", "-d", "offsite")

    def leave_network(self) -> None:
        """Off the stack's network, so `down` can remove it."""
        run(["docker", "network", "disconnect", self.network, self.name])

    def join_network(self) -> None:
        run(["docker", "network", "connect", self.network, self.name])


@pytest.fixture(scope="module")
def storage(restorable):
    storage = Storage(restorable)
    try:
        storage.start()
        yield storage
    finally:
        print(run(["docker", "logs", "--tail", "60", storage.name], check=False).stdout)
        storage.remove()


class TestOffsite:
    """Part 4: off-site copies in S3-compatible storage (moto's server on the stack's network), on the same
    live stack as TestRestore: the round trip with the local backups gone too, and bad settings."""

    def test_1_round_trip_from_off_site_after_the_host_lost_everything(self, restorable, storage):
        project = restorable
        assert (
            project.make("backups")
            .output.strip()
            .endswith("off-site: off (set S3_BUCKET in .envs/offsite.env to copy each backup off the host)")
        ), "off-site copies are off, silently, until configured"
        storage.configure()
        browser = login(project)
        upload(project, browser, "offsite.txt", b"Off-site row: uploaded before the backup\n", title="Off-site row")
        before = documents(browser)
        contents = {title: browser.get(link).content for title, link in before.items()}
        assert "Off-site row" in before

        taken = project.make("backup")
        name = re.search(rf"OK (db-{STAMP}\.dump\.age)", taken.output).group(1)
        stamp = name[3:19]
        files = {name, f"media-{stamp}.tar.gz.age", f"seal-{stamp}.txt"}
        # make backup copies it at once, unless the offsite service's own loop (it looks every 10 s) was quicker.
        copied = f"copied {name}, media-{stamp}.tar.gz.age and seal-{stamp}.txt to s3://{BUCKET}/{PREFIX}/"
        assert copied in taken.output or "nothing new to copy" in taken.output, taken.output[-3000:]

        def both_copied():
            objects = storage.objects(BUCKET)
            return objects if {f"{PREFIX}/{file}" for file in files} <= objects.keys() else None

        objects = poll(both_copied, 60, what=f"{name} and its media archive in the bucket")
        local = {
            line.split()[-1]: int(line.split()[4])
            for line in project.live("exec", "-T", "backup", "ls", "-ln", "/backups").stdout.splitlines()
            if stamp in line
        }
        assert {f"{PREFIX}/{n}": size for n, size in local.items()} == {
            k: v for k, v in objects.items() if stamp in k
        }, objects
        assert f"{name}\t" in project.make("backups").output.split(f"off-site, s3://{BUCKET}/{PREFIX}/:")[1]
        # A backup the schedule takes (not make backup) is copied by the offsite service by itself.
        project.live("exec", "-T", "backup", "sh", "/usr/local/bin/backup.sh", "now")
        scheduled = [n for n in project.backups() if n.startswith("db-")][-1]
        poll(lambda: f"{PREFIX}/{scheduled}" in storage.objects(BUCKET), 60, what=f"{scheduled} to be copied off-site")

        # The host loses everything: the backups folder and every volume.
        storage.leave_network()
        # Every profile: offsite's too (a plain down leaves a service its profile left out running).
        project.live("--profile", "*", "down", "-v", "--timeout", "5")
        run(["rm", "-rf", str(project.path / "backups")])
        # The stack's networks again (offsite's: its profile), for the storage to join.
        project.live("--profile", "offsite", "up", "--no-start")
        storage.join_network()
        project.make("deploy", timeout=TIMEOUT + 300)
        assert documents(Browser(project.live_port)) == {} and login(project) is None, "the stack should be empty"
        assert name not in project.backups()

        restored = project.make("restore", f"NAME={name}", "CONFIRM=yes", timeout=TIMEOUT + 300)
        fetched = f"fetching {name}, media-{stamp}.tar.gz.age and seal-{stamp}.txt from s3://{BUCKET}/{PREFIX}/"
        assert fetched in restored.output
        assert f"restored {name}" in restored.output
        browser = login(project)
        assert browser, "the admin's login should be back"
        assert documents(browser) == before
        assert {title: browser.get(link).content for title, link in before.items()} == contents
        # Fetched apart from the backups here (never among them before its seal was checked).
        fetched_files = project.live("exec", "-T", "backup", "ls", "-1A", "/backups/fetched").stdout.split()
        assert files == set(fetched_files) and not files & set(project.backups())
        for service in ("app", "nginx", "backup", "offsite", "db"):
            assert project.health("compose.prod.yaml", service) == "healthy", service

        # The keys reach the offsite service only, at run time: not the backup service, not the image.
        secret = storage.keys[1]
        assert secret in project.live("exec", "-T", "offsite", "env").stdout
        assert secret not in project.live("exec", "-T", "backup", "env").stdout
        image = f"{project.slug}-offsite:e2e"
        assert (
            secret
            not in run(["docker", "image", "inspect", image]).stdout
            + run(["docker", "history", "--no-trunc", image]).stdout
        )
        fields = project.process_status(LIVE, "offsite")
        # Root, the backups' owner, without any capability (like the backup service).
        assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0 and fields["Uid"].split()[0] == "0"
        assert fields["NoNewPrivs"].strip() == "1"
        assert project.live("exec", "-T", "offsite", "touch", "/probe", check=False).returncode != 0

    def test_2_bad_settings_say_what_to_do_and_lose_nothing(self, restorable, storage):
        project = restorable
        storage.configure()
        browser = login(project)
        before = documents(browser)
        cases = {
            "an unset bucket": (
                {"S3_BUCKET": ""},
                "AWS_ACCESS_KEY_ID is set in .envs/offsite.env but S3_BUCKET is not: set S3_BUCKET",
            ),
            "wrong keys": (
                {"AWS_SECRET_ACCESS_KEY": "not-the-secret"},
                "the storage refused the keys: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in .envs/offsite.env",
            ),
            "an unreachable endpoint": (
                {"AWS_ENDPOINT_URL": f"http://{storage.name}:5999"},
                f"could not reach http://{storage.name}:5999: check AWS_ENDPOINT_URL",
            ),
        }
        for case, (changes, message) in cases.items():
            storage.configure(**changes)
            copies = storage.objects(BUCKET)
            taken = project.make("backup", check=False)
            assert taken.returncode != 0, case
            assert "backup: FAILED: off-site" in taken.output and message in taken.output, (case, taken.output[-3000:])
            assert (
                "The local backup is kept in /backups" in taken.output or "The local backups are kept" in taken.output
            )
            name = re.search(rf"OK (db-{STAMP}\.dump\.age)", taken.output).group(1)
            listed = project.make("backups", check=False)
            assert listed.returncode != 0 and name in listed.output.split("off-site")[0], (case, listed.output)
            assert storage.objects(BUCKET) == copies, "nothing reached the bucket, nothing left it"
            poll(
                lambda: project.health("compose.prod.yaml", "backup") == "unhealthy",
                60,
                what=f"the backup service to turn unhealthy ({case})",
            )
            # The running service's loop (it looks every 10 s) fails on the same backup and logs the alert line too.
            poll(
                lambda: "backup: FAILED: off-site" in project.logs("compose.prod.yaml", "offsite"),
                60,
                what=f"the offsite service to log the failure ({case})",
            )
            assert documents(browser) == before, case
            # Restoring needs no off-site copy of a backup that is here; one that is not is refused.
            refused = project.make("restore", "NAME=db-19990101T000000Z.dump", "CONFIRM=yes", check=False)
            assert refused.returncode != 0 and "Nothing was changed" in refused.output, refused.output[-2000:]
            assert documents(browser) == before, case
            # FROM=offsite: the same advice, and nothing changed.
            refused = project.make("restore", f"NAME={name}", "FROM=offsite", "CONFIRM=yes", check=False)
            assert refused.returncode != 0 and "Nothing was changed" in refused.output, refused.output[-2000:]
            assert message in refused.output and "stopping what writes" not in refused.output, (case, refused.output)
            assert documents(browser) == before, case

        # Good settings again: the backups the failures left behind go off-site, and all is healthy again.
        storage.configure()
        newest = [n for n in project.backups() if n.startswith("db-")][-1]
        poll(lambda: f"{PREFIX}/{newest}" in storage.objects(BUCKET), 90, what=f"{newest} to be copied off-site")
        poll(
            lambda: project.health("compose.prod.yaml", "backup") == "healthy",
            60,
            what="the backup service to recover once the copies succeed",
        )
        poll(
            lambda: project.health("compose.prod.yaml", "offsite") == "healthy", 60, what="the offsite service's health"
        )

        # A backup the bucket does not hold.
        absent = project.make(
            "restore", "NAME=db-19990101T000000Z.dump.age", "FROM=offsite", "CONFIRM=yes", check=False
        )
        assert absent.returncode != 0, absent.output[-2000:]
        # The first of its files fetched (the seal) is the first missing.
        assert f"no seal-19990101T000000Z.txt in s3://{BUCKET}/{PREFIX}/ (make backups lists them). Nothing was" in (
            absent.output
        )
        assert documents(browser) == before
        # FROM=offsite takes the off-site copy even when the backup is here too.
        restored = project.make("restore", f"NAME={newest}", "FROM=offsite", "CONFIRM=yes", timeout=TIMEOUT + 300)
        assert f"fetching {newest}, media-" in restored.output and f"restored {newest}" in restored.output
        browser = login(project)
        assert browser and documents(browser) == before
