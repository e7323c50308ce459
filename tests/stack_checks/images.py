"""The images: every Dockerfile target builds, holds what it should and no secret, and the app image refuses bad
settings with a message that says what to do."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest

from stack_checks.development import DevelopmentChecks
from support import (
    LIVE,
    STRAYS,
    env_file,
    image_files,
    run,
)


class ImageChecks(DevelopmentChecks):
    """Checks for a test class that sets `options` (tests/test_e2e.py); they run after DevelopmentChecks'."""

    def test_1_every_dockerfile_target_builds(self, project):
        for target, image in project.images.items():
            config = json.loads(run(["docker", "image", "inspect", image]).stdout)[0]["Config"]
            if target == "applayer":
                assert config["User"] == "10001:10001"
                assert config["Entrypoint"] == ["python", "/app/wait_entrypoint.py"]
            if target == "staticlayer":
                assert config["User"] == "101:101"
        # The nginx image carries the collected static files, and nothing of the app's code.
        listing = run(
            [
                "docker",
                "run",
                "--rm",
                "--entrypoint",
                "sh",
                project.images["staticlayer"],
                "-c",
                "ls /srv/static/admin/css/ && ls /srv/static/staticfiles.json && ls / && ls /srv",
            ]
        ).stdout
        assert "base.css" in listing and "staticfiles.json" in listing
        assert "manage.py" not in listing and "app\n" not in listing
        # The app image holds the code, and none of the secrets lying around in the project.
        files = run(
            ["docker", "run", "--rm", "--entrypoint", "find", project.images["applayer"], "/app", "-type", "f"]
        ).stdout.split()
        assert "/app/manage.py" in files and f"/app/{project.slug}/models.py" in files
        # Nor the private key that decrypts the backups (the hook writes it beside the code, for the user to move).
        assert (project.path / "backup-identity.txt").exists()
        secret_names = {*STRAYS, "prod.env", "backup-identity.txt"}
        leaked = [path for path in files if path.rsplit("/", 1)[1] in secret_names or "/.envs" in path]
        assert leaked == [], f"secrets in the app image: {leaked}"
        # Development tools: none of the dev group is in the live image (the debug toolbar above all), though the
        # settings and URLs that turn the toolbar on are.
        script = (
            "import importlib.util as u; "
            "print(*[m for m in ('debug_toolbar', 'mypy', 'factory', 'coverage', 'pytest') if u.find_spec(m)])"
        )
        installed = run(["docker", "run", "--rm", "--entrypoint", "python", project.images["applayer"], "-c", script])
        assert installed.stdout.strip() == "", f"dev tools in the live image: {installed.stdout}"

    def test_8a_no_secret_in_any_image_layer(self, project):
        secrets = {
            key: value
            for name in ("prod", "db", "store")
            if (project.path / f".envs/{name}.env").exists()
            for key, value in env_file(project.path / f".envs/{name}.env").items()
            if key in ("SECRET_KEY", "POSTGRES_PASSWORD", "APP_DB_PASSWORD", "REDIS_PASSWORD")
        }
        assert {"SECRET_KEY", "POSTGRES_PASSWORD", "APP_DB_PASSWORD"} <= set(secrets)
        for target in ("applayer", "staticlayer"):
            image = project.images[target]
            history = run(["docker", "history", "--no-trunc", image]).stdout
            saved = subprocess.run(["docker", "save", image], capture_output=True, timeout=600, check=True).stdout
            assert len(saved) > 1_000_000, f"docker save {image} returned too little to scan"
            files = list(image_files(saved))
            assert any("manage.py" in name or "nginx.conf" in name for name, _ in files), f"no layer files in {image}"
            for key, value in secrets.items():
                assert value not in history, f"{key} is in the history of {image}"
                for name, data in files:
                    assert value.encode() not in data, f"{key} is in {name} of {image}"

    def test_8d2_the_live_site_shows_no_debug_toolbar_even_with_debug_on(self, project, live):
        """The live stack's page has no toolbar; nor has the live image's app with DEBUG=1 (the package is absent)."""
        home = live.get("/")
        assert home.status_code == 200 and "djDebug" not in home.text and "__debug__" not in home.text
        code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG_TOOLBAR)"
        shown = project.run_once("--no-deps", "-e", "DEBUG=1", "app", "python", "-c", code)
        assert shown.stdout.strip().splitlines()[-1] == "False", shown.stdout

    def test_8d_deploy_checks_pass_in_the_live_image(self, project, live):
        result = project.run_once(
            "--no-deps", "app", "python", "manage.py", "check", "--deploy", "--fail-level", "WARNING"
        )
        assert "System check identified no issues" in result.stdout

    @pytest.mark.parametrize(
        "variable, value, message",
        [
            ("SECRET_KEY", "", "SECRET_KEY is not set, and DEBUG is off"),
            ("ALLOWED_HOSTS", "", "ALLOWED_HOSTS is not set, and DEBUG is off"),
            ("DEBUG", "flase", "DEBUG='flase' is not a boolean"),
        ],
    )
    def test_8e_the_app_refuses_to_start_with_bad_settings(self, project, live, variable, value, message):
        result = project.run_once(
            "--no-deps", "-e", f"{variable}={value}", "app", "gunicorn", "config.wsgi", check=False
        )
        assert result.returncode != 0
        assert message in result.stdout + result.stderr

    def test_8f_debug_left_on_is_announced_loudly(self, project, live):
        # gunicorn with DEBUG=1 runs until stopped: read its output as it comes and stop it at the banner (or
        # after 90 s for gunicorn to load Django and say it, on a machine that may be building images meanwhile).
        name = f"{project.slug}-debug-banner"
        command = project.command(LIVE, "run", "--rm", "--no-deps", "--name", name, "-e", "DEBUG=1", "app")
        output = []
        with subprocess.Popen(
            [*command, "gunicorn", "config.wsgi"],
            cwd=project.path,
            env=project.env(LIVE),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as gunicorn:
            watchdog = threading.Timer(90, run, args=(["docker", "rm", "-f", name],), kwargs={"check": False})
            watchdog.start()
            try:
                for line in gunicorn.stdout:
                    output.append(line)
                    if "DEBUG is on in gunicorn" in line:
                        break
            finally:
                watchdog.cancel()
                run(["docker", "rm", "-f", name], check=False)
        assert any("DEBUG is on in gunicorn" in line for line in output), "".join(output)[-3000:]

    @pytest.mark.parametrize(
        "url, code, message",
        [
            (
                "postgres://u:p@no-such-host.invalid:5432/app",
                1,
                "gave up after 3s waiting for postgres at no-such-host.invalid:5432 (could not translate host name",
            ),
            ("postgres://u:p@db:port/app", 2, "DATABASE_URL is malformed"),
        ],
    )
    def test_8g_wait_entrypoint_explains_a_bad_database_url(self, project, live, url, code, message):
        result = project.run_once(
            "--no-deps", "-e", f"DATABASE_URL={url}", "-e", "WAIT_TIMEOUT=3", "app", "true", check=False
        )
        assert result.returncode == code
        assert message in result.stderr
