"""The one support module of the template's tests: baking and the option matrix, running commands, and the
baked project's stacks as a user drives them (Project and its live, edge and backup variants, a Browser that talks
to nginx as a TLS-terminating proxy does). Fixtures live in conftest.py; test files import from here."""

from __future__ import annotations

import email
import email.policy
import http.client
import io
import itertools
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import jinja2
import pytest
import requests
import yaml

TEMPLATE = Path(__file__).resolve().parent.parent
# The tests `import pythons` (scripts/pythons.py): uv under a baked project's Python, on the host or in Docker.
sys.path.insert(0, str(TEMPLATE / "scripts"))
# pytest-cookies renders cookiecutter.json before cookiecutter puts the template on the path for its extension
# (check_answers.py); cookiecutter and cruft do that themselves.
sys.path.append(str(TEMPLATE))
BIN = Path(sys.executable).parent  # the template's virtualenv: cookiecutter, ruff, hadolint, uv...

# The option matrix. Every answer that changes the baked files, with its values, in cookiecutter.json's order: its
# choices, and use_celery (a yes/no whose default follows the store). A new choice in cookiecutter.json joins the
# matrix by itself, and adds a few bakes to the covering set below, not a multiple of them.
QUESTIONS = json.loads((TEMPLATE / "cookiecutter.json").read_text())
YES_NO = {"use_celery": ["y", "n"]}
OPTIONS = {
    key: value if isinstance(value, list) else YES_NO[key]
    for key, value in QUESTIONS.items()
    if not key.startswith("_") and (isinstance(value, list) or key in YES_NO)
}
# Pairs of answers that check_answers.py refuses (test_bake.py checks that it does, and that it accepts every bake).
REFUSED = [
    {"python_version": "3.15", "django_version": "5.2"},  # Django 5.2 does not support Python 3.15
    {"key_value_store": "none", "use_celery": "y"},  # Celery's broker is the store
]
PYTHON_VERSIONS = OPTIONS["python_version"]
DJANGO_VERSIONS = OPTIONS["django_version"]
POSTGRES_VERSIONS = OPTIONS["postgres_version"]
SERVICES = {
    "none": {"key_value_store": "none", "use_celery": "n"},
    "valkey": {"key_value_store": "valkey", "use_celery": "n"},
    "redis": {"key_value_store": "redis", "use_celery": "n"},
    "celery-valkey": {"key_value_store": "valkey", "use_celery": "y"},
    "celery-redis": {"key_value_store": "redis", "use_celery": "y"},
}
CIS = OPTIONS["ci"]
LICENSES = OPTIONS["open_source_license"]
USERNAME_TYPES = OPTIONS["username_type"]

# The answers of the end-to-end tests' bakes (the classes' options in test_e2e.py, the bake fixtures of the other
# e2e files), the rest left at the defaults: the covering set starts from them, so each is also rendered and linted.
E2E_VARIANTS = {
    "defaults": {},  # test_edge, test_release, test_containment, test_new_app (valkey: Celery by default)
    "e2e-full": {"python_version": "3.14", "django_version": "5.2", "postgres_version": "18", "use_sentry": "y"},
    "e2e-lean": {
        "python_version": "3.12",
        "django_version": "6.1",
        "postgres_version": "15",
        "key_value_store": "none",
        "use_celery": "n",
        "username_type": "username",
    },
    "e2e-redis": {
        "python_version": "3.13",
        "django_version": "6.1",
        "postgres_version": "17",
        "key_value_store": "redis",
    },
    "backup-schedule": {"key_value_store": "none", "username_type": "username", "postgres_version": "18"},
    "backup-restore": {
        "key_value_store": "none",
        "username_type": "username",
        "postgres_version": "17",
        "python_version": "3.13",
        "django_version": "6.1",
    },
    "live-commands": {"key_value_store": "none"},
    "login-limits": {"key_value_store": "none", "python_version": "3.13", "django_version": "6.1"},
    "k8s-smoke": {"key_value_store": "none", "deploy_target": "compose+kubernetes"},
    "frontend": {"frontend": "tailwind", "key_value_store": "none"},  # test_frontend's live and development stacks
    # API (tests/test_api.py): one live stack per framework.
    "api-drf": {"api": "drf", "key_value_store": "none", "use_celery": "n", "django_version": "6.1"},
    "api-ninja": {
        "api": "ninja",
        "key_value_store": "none",
        "use_celery": "n",
        "django_version": "5.2",
        "username_type": "username",
    },
    # Media in object storage (issue 26, tests/test_media_s3.py): one live stack with moto as its bucket.
    "media-s3": {"media_storage": "s3", "key_value_store": "none", "username_type": "username"},
}


def answers(**given: str) -> dict[str, str]:
    """Every answer of OPTIONS: the given ones, the others at their defaults as cookiecutter derives them (the
    first choice; use_celery from the store)."""
    chosen = {}
    for key, values in OPTIONS.items():
        default = QUESTIONS[key] if isinstance(QUESTIONS[key], str) else values[0]
        rendered = jinja2.Environment().from_string(default).render(cookiecutter={**chosen, **given})
        chosen[key] = given.get(key, rendered)
    return chosen


def refused(partial: dict[str, str], refusals: list[dict[str, str]]) -> bool:
    return any(all(partial.get(key) == value for key, value in refusal.items()) for refusal in refusals)


def pairs(row: dict[str, str]) -> set[frozenset]:
    return {frozenset([(a, row[a]), (b, row[b])]) for a, b in itertools.combinations(row, 2)}


def covering(
    options: dict[str, list[str]], refusals: list[dict[str, str]] = (), seeds: list[dict[str, str]] = ()
) -> list[dict[str, str]]:
    """Rows of answers in which every pair of values of two options that refusals allow appears at least once,
    and no row holds a refused combination: the seeds first, then rows built greedily (grown from each of the first
    pairs not yet covered, every other option given the value that covers most new pairs, the first on a tie; the
    row that covers most is kept).
    Deterministic: each xdist worker must collect the same tests."""
    wanted = {}  # an ordered set: the first pair not covered is the same on every run
    for a, b in itertools.combinations(options, 2):
        for x, y in itertools.product(options[a], options[b]):
            if not refused({a: x, b: y}, refusals):
                wanted[frozenset([(a, x), (b, y)])] = None
    rows = []

    def add(row: dict[str, str]) -> None:
        if refused(row, refusals):
            raise ValueError(f"a refused combination: {row}")
        if row not in rows:
            rows.append(row)
            for pair in pairs(row):
                wanted.pop(pair, None)

    for seed in seeds:
        add({key: seed[key] for key in options})

    def grown(start: frozenset) -> dict[str, str]:
        row = dict(start)
        for key in options:
            if key in row:
                continue
            allowed = [value for value in options[key] if not refused({**row, key: value}, refusals)]
            if not allowed:
                raise ValueError(f"no value of {key} goes with {row}")
            row[key] = max(allowed, key=lambda v: sum(frozenset([(k, row[k]), (key, v)]) in wanted for k in row))
        return {key: row[key] for key in options}

    while wanted:
        # Of the rows grown from the first few pairs not covered yet, the one that covers most.
        candidates = [grown(start) for start in itertools.islice(wanted, 24)]
        add(max(candidates, key=lambda row: len(pairs(row) & wanted.keys())))
    return rows


def bakes() -> list[dict[str, str]]:
    """The covering set of bakes over every answer in OPTIONS, starting from the end-to-end variants."""
    return covering(OPTIONS, REFUSED, [answers(**given) for given in E2E_VARIANTS.values()])


def supported(python: str, django: str) -> bool:
    """Django 5.2 does not support Python 3.15; check_answers.py refuses the pair."""
    return not refused({"python_version": python, "django_version": django}, REFUSED)


def services_id(context: dict[str, str]) -> str:
    return next(name for name, answers in SERVICES.items() if all(context[k] == v for k, v in answers.items()))


def combination_id(context: dict[str, str]) -> str:
    """A bake's test id: every answer of OPTIONS (the yes/no ones by name when yes)."""
    parts = [
        f"py{context['python_version']}",
        f"dj{context['django_version']}",
        f"pg{context['postgres_version']}",
        services_id(context),
        context["ci"],
        context["open_source_license"].replace(" ", ""),
        context["username_type"],
    ]
    parts += ["sentry"] if context.get("use_sentry") == "y" else []
    parts += ["k8s"] if context.get("deploy_target", "compose") != "compose" else []
    parts += ["tailwind"] if context.get("frontend", "none") == "tailwind" else []  # issue 25
    parts += [f"api-{context['api']}"] if context.get("api", "none") != "none" else []  # API
    parts += ["s3"] if context.get("media_storage", "local") == "s3" else []  # media in object storage
    return "-".join(parts)


def tool(name: str) -> str:
    """A command from the template's virtualenv, else from PATH; a missing tool fails the test."""
    candidate = BIN / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run `uv sync` in the template (it installs the pinned tools)")
    return found


def run(
    command: list[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    check: bool = True,
) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}"
            f"\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


class ComposeLoader(yaml.SafeLoader):
    """Safe YAML plus Compose's merge tags (!override, !reset), read as the plain value they tag."""


def _compose_tag(loader: ComposeLoader, node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


for _tag in ("!override", "!reset"):
    ComposeLoader.add_constructor(_tag, _compose_tag)


def load_yaml(text: str):
    return yaml.load(text, Loader=ComposeLoader)


def bake(cookies, **context: str) -> Path:
    """Bake with these answers and return the project's path; fail with cookiecutter's reason if it fails."""
    result = cookies.bake(extra_context=context)
    assert result.exception is None, f"bake failed: {result.exception}"
    assert result.exit_code == 0
    return Path(result.project_path)


def postgres_settings(project: Path) -> dict[str, str]:
    """postgres.env, the PostgreSQL major both stacks run (and where its volume is mounted): make and ./live
    export it for docker compose; a user running docker compose by hand exports it too."""
    return dict(re.findall(r"(?m)^(POSTGRES_[A-Z_]+)=(.*)$", (project / "postgres.env").read_text()))


def postgres_major(project: Path) -> str:
    """The PostgreSQL major a baked project's live stack runs (postgres.env): the tag of the backup image make
    build-live builds (<slug>-backup:pg<major>)."""
    return postgres_settings(project)["POSTGRES_MAJOR"]


# Let's Encrypt's ACME test server, which the edge tests get their certificates from: pinned, the same tag as
# compose.pebble.yaml, .ci/run and the benchmark (tests/test_portable.py checks they agree).
PEBBLE_IMAGE = "ghcr.io/letsencrypt/pebble:2.10.1"


def write_pebble_api_root(project: Path, image: str = PEBBLE_IMAGE) -> None:
    """pebble-api-root.pem in the project: the root that signs pebble's own API (compose.pebble.yaml's CA).
    Copied out of a created, never started container: the real image is FROM scratch, with no `cat` to run."""
    container = run(["docker", "create", image]).stdout.strip()
    try:
        run(["docker", "cp", f"{container}:/test/certs/pebble.minica.pem", str(project / "pebble-api-root.pem")])
    finally:
        run(["docker", "rm", container], check=False)


def pebble_issuing_root(project: Path, pebble_port: int) -> ssl.SSLContext:
    """Trust in the root pebble issues the edge's certificate under, and nothing else."""
    api = ssl.create_default_context(cafile=str(project / "pebble-api-root.pem"))
    root = httpx.get(f"https://127.0.0.1:{pebble_port}/roots/0", verify=api, timeout=30)
    assert root.status_code == 200 and "BEGIN CERTIFICATE" in root.text
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=root.text)
    return context


def stack_name(name: str) -> str:
    """The project name for an end-to-end bake: with E2E_NAME_SUFFIX (e.g. a branch name) appended, a second run
    on the same engine gets stacks, volumes and images of its own."""
    suffix = os.environ.get("E2E_NAME_SUFFIX")
    return f"{name} {suffix}" if suffix else name


def clean_env(**extra: str) -> dict[str, str]:
    """The environment a baked project's commands run with: none of this run's Django variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DJANGO_SETTINGS_MODULE",
            "DATABASE_URL",
            "REDIS_URL",
            "DEBUG",
            "SECRET_KEY",
            "VIRTUAL_ENV",
            "UV_PROJECT_ENVIRONMENT",
        )
    }
    env.update(extra)
    return env


def require(condition: bool, reason: str) -> None:
    """Skip when something optional is missing on a developer's machine; in CI, fail instead."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: a missing prerequisite is a failure, not a skip)")
    pytest.skip(reason)


def lint_env() -> dict[str, str]:
    """`make lint`'s environment: the template's own uv first on PATH, as a user's would be, and the Python 3.13
    of this machine for mypy's hook (uv fetches the project's Python where it can download; this machine cannot,
    and its python3.13 is a pyenv build uv does not look for)."""
    import pythons  # scripts/pythons.py (on the path: above)

    interpreter = pythons.host_interpreter("3.13")
    require(interpreter is not None, "no Python 3.13 on this machine for the mypy hook of make lint")
    env = clean_env(PRE_COMMIT_HOME=str(Path.home() / ".cache" / "pre-commit"), UV_PYTHON=interpreter)
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    return env


# ---- The baked project's stacks, as the end-to-end tests drive them.

DOMAIN = "shop.example.com"
# Secrets a user may leave in the project: none of them may reach an image (.envs/prod.env is there already).
STRAYS = {".env": "STRAY_VARIABLE=stray-env-secret\n", "live.yaml": "stringData: {SECRET_KEY: stray-manifest-secret}\n"}
# An SMTP server for the e2e tests, on the python stand-in: it prints each mail it receives to its log.
SMTP_CATCHER = """FROM python:3.13-slim
RUN pip install --no-cache-dir aiosmtpd==1.4.6
USER nobody
CMD ["python", "-u", "-m", "aiosmtpd", "-n", "-l", "0.0.0.0:1025", "-c", "aiosmtpd.handlers.Debugging"]
"""
TIMEOUT = 240  # seconds for a stack to become healthy on a busy 2-core machine
# An S3-compatible server (the off-site copies' tests, media_storage=s3's): moto's, pinned, on a stand-in base.
MOTO_IMAGE = "e2e-moto:5.2.5"
MOTO_DOCKERFILE = """FROM python:3.13-slim
RUN pip install --no-cache-dir "moto[server]==5.2.5"
ENTRYPOINT ["moto_server", "-H", "0.0.0.0", "-p", "5000"]
"""
# The development stack as `make watch` runs it: the override replaces the source's bind mount by sync rules.
WATCH = ("compose.yaml", "compose.watch.yaml")
# The live stack as these tests reach it: without its edge (`make deploy BEHIND_PROXY=1`), nginx on a loopback
# port, believing the forwarded headers of the test's requests as it would a load balancer's. They arrive from
# the Docker network's gateway, a private address the engine picks. tests/test_edge.py runs the edge itself.
LIVE = ("compose.prod.yaml", "compose.behind-proxy.yaml")
TRUSTED_PROXIES = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"


def engine_reachable() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def require_engine() -> None:
    """Skip without a Docker engine on a developer's machine; under CI, fail."""
    require(engine_reachable(), "no Docker engine is reachable (run ../shared/container-engine/setup)")


def env_file(path: Path) -> dict[str, str]:
    """The variables of an env file (.envs/*.env): NAME=value lines, comments and blank lines skipped."""
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def image_files(saved: bytes):
    """(path, content) of every file in a `docker save` archive: its manifest and config, and the files of
    every layer (plain or compressed tarballs inside it, opened), so a secret anywhere is found."""

    def walk(archive: tarfile.TarFile, prefix: str):
        for member in archive:
            if not member.isfile():
                continue
            data = archive.extractfile(member).read()
            try:
                inner = tarfile.open(fileobj=io.BytesIO(data))
            except tarfile.TarError:
                yield prefix + member.name, data
                continue
            with inner:
                yield from walk(inner, f"{prefix}{member.name}!")

    with tarfile.open(fileobj=io.BytesIO(saved)) as archive:
        yield from walk(archive, "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def poll(check, timeout: float, interval: float = 1.0, what: str = "condition"):
    """Call check() until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (requests.RequestException, subprocess.SubprocessError) as exc:
            last = exc
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class S3Server:
    """moto's S3 server (MOTO_IMAGE, built here once) in a container on a Docker network of a test's, reached by
    its name on that network; python() runs boto3 inside it, as the bucket's owner or with the keys given."""

    def __init__(self, name: str, network: str, *run_args: str):
        self.name = name.replace("_", "-")  # a host name: no "_" (the AWS CLI refuses it)
        self.network = network
        self.run_args = run_args  # more `docker run` options: an address, moto's settings
        self.endpoint = f"http://{self.name}:5000"
        self.keys = ("owner", "owner")  # moto takes any key while its authentication is off

    def start(self, context: Path) -> None:
        context.mkdir(parents=True, exist_ok=True)
        (context / "Dockerfile").write_text(MOTO_DOCKERFILE)
        run(["docker", "build", "-t", MOTO_IMAGE, str(context)], timeout=900)
        run(["docker", "rm", "-f", self.name], check=False)
        run(["docker", "run", "-d", "--name", self.name, "--network", self.network, *self.run_args, MOTO_IMAGE])
        # moto's own API: no S3 request (the off-site tests count the first unauthenticated ones).
        ready = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/moto-api/')"
        poll(lambda: self.python(ready, check=False).returncode == 0, 60, what="the S3 server")

    def python(self, code: str, keys: tuple[str, str] | None = None, check: bool = True):
        """Python in the server's container with `s3`, a boto3 client of it (boto3 is moto's own dependency)."""
        access, secret = keys or self.keys
        prelude = (
            "import boto3; kw = dict(endpoint_url='http://127.0.0.1:5000', region_name='us-east-1',"
            f" aws_access_key_id='{access}', aws_secret_access_key='{secret}'); s3 = boto3.client('s3', **kw);"
        )
        return run(["docker", "exec", self.name, "python", "-c", prelude + code], check=check)

    def objects(self, bucket: str) -> dict[str, int]:
        """Each key in the bucket and its size."""
        listing = self.python(
            f"[print(o['Key'], o['Size']) for o in s3.list_objects_v2(Bucket='{bucket}').get('Contents', [])]"
        ).stdout
        return {key: int(size) for key, size in (line.split() for line in listing.splitlines())}

    def remove(self) -> None:
        run(["docker", "rm", "-f", "-v", self.name], check=False)


class Browser:
    """Talks to nginx the way a TLS-terminating proxy in front of it does: Host is the public domain and
    X-Forwarded-Proto is https, so Django sees the request a visitor of https://DOMAIN made (nginx believes it:
    the live stack runs behind a proxy here, LIVE, with the test's address among its TRUSTED_PROXIES)."""

    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.session = requests.Session()
        self.session.headers.update({"Host": DOMAIN, "X-Forwarded-Proto": "https"})

    def keep_cookies(self, response: requests.Response) -> requests.Response:
        # Django marks its cookies Secure (the visitor uses HTTPS); the hop from the stand-in proxy to
        # nginx is plain HTTP, where a cookie jar would hold them back. Send them anyway.
        for cookie in self.session.cookies:
            cookie.secure = False
        return response

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.keep_cookies(self.session.get(self.base + path, allow_redirects=False, timeout=30, **kwargs))

    def post_form(self, path: str, data: dict, files: dict | None = None) -> requests.Response:
        """POST a form read from `path` (GET first for its CSRF token), as the browser would."""
        page = self.get(path)
        assert page.status_code == 200, f"GET {path}: {page.status_code}"
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        return self.post(path, {"csrfmiddlewaretoken": token, **data}, files=files)

    def post(self, path: str, data: dict, files: dict | None = None, referer: str | None = None) -> requests.Response:
        headers = {"Referer": f"https://{DOMAIN}{referer or path}"}
        return self.keep_cookies(
            self.session.post(
                self.base + path, data=data, files=files, headers=headers, allow_redirects=False, timeout=30
            )
        )


# Debian's chromium (.ci/run installs it), driven by Playwright: Playwright cannot download its own browsers here.
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/lib/chromium/chromium"))


@contextmanager
def chromium(*switches: str, **context_options) -> Iterator:
    """A real browser page. `switches` are chromium's command-line switches (e.g. --host-resolver-rules=...),
    `context_options` Playwright's new_context options (e.g. extra_http_headers, ignore_https_errors).
    Every Content-Security-Policy violation the page reports is kept in `page.csp_violations`."""
    require(CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install chromium (or set CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", *switches])
        try:
            page = browser.new_context(**context_options).new_page()
            page.csp_violations = []
            page.on(
                "console",
                lambda message: "Content Security Policy" in message.text and page.csp_violations.append(message.text),
            )
            yield page
        finally:
            browser.close()


class Project:
    """A baked project and the docker / docker compose commands a user would type in it."""

    def __init__(self, path: Path):
        self.path = path
        self.slug = path.name
        self.ports = {"APP_PORT": free_port(), "NGINX_PORT": free_port(), "DB_PORT": free_port()}
        self.live_port = free_port()
        # The builder stages by hand; the two live images through the Makefile, as a user builds them.
        self.images = {
            "appbuilder": f"{self.slug}-appbuilder:e2e",
            "staticbuilder": f"{self.slug}-staticbuilder:e2e",
            "applayer": f"{self.slug}-app:e2e",
            "staticlayer": f"{self.slug}-static:e2e",
            "offsite": f"{self.slug}-offsite:e2e",  # built by make build-live too
            # make build-live's image for the backup service: PostgreSQL's image of the project's major with age.
            "backup": f"{self.slug}-backup:pg{postgres_major(path)}",
        }

    def env(self, file: str | tuple[str, ...]) -> dict[str, str]:
        """The environment for a compose file, or for a list of them (the first one decides: compose.yaml's
        overrides get the development ports too)."""
        first = file if isinstance(file, str) else file[0]
        if first == "compose.yaml":
            return clean_env(**{k: str(v) for k, v in self.ports.items()})
        # compose.prod.yaml's default image names, at the tag `make build-live TAG=e2e` gave them; BEHIND_PROXY
        # for the Makefile's live targets.
        return clean_env(LIVE_PORT=str(self.live_port), TAG="e2e", BEHIND_PROXY="1", TRUSTED_PROXIES=TRUSTED_PROXIES)

    def command(self, file: str | tuple[str, ...], *args: str) -> list[str]:
        files = (file,) if isinstance(file, str) else file
        return ["docker", "compose", *(flag for name in files for flag in ("-f", name)), *args]

    def compose(
        self, file: str | tuple[str, ...], *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess:
        return run(self.command(file, *args), cwd=self.path, env=self.env(file), timeout=timeout, check=check)

    def live(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.compose(LIVE, *args, **kwargs)

    def container(self, file: str | tuple[str, ...], service: str) -> str:
        return self.compose(file, "ps", "-a", "-q", service).stdout.strip()

    def inspect(self, container: str) -> dict:
        return json.loads(run(["docker", "inspect", container]).stdout)[0]

    def health(self, file: str, service: str) -> str:
        state = self.inspect(self.container(file, service))["State"]
        return (state.get("Health") or {}).get("Status", state["Status"])

    def process_status(self, file: str | tuple[str, ...], service: str) -> dict[str, str]:
        """The fields of /proc/1/status in the service's container (Uid, CapEff, CapBnd, NoNewPrivs...)."""
        status = self.compose(file, "exec", "-T", service, "cat", "/proc/1/status").stdout
        return {
            key: value.strip() for key, value in (line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        }

    def logs(self, file: str | tuple[str, ...], *services: str) -> str:
        return self.compose(file, "logs", "--no-color", "--tail", "200", *services, check=False).stdout

    def run_once(self, *args: str, check: bool = True, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
        """`docker compose run --rm` in the live stack, as the README's deploy steps do."""
        result = self.live("run", "--rm", *args, check=False, timeout=timeout)
        if check and result.returncode != 0:
            pytest.fail(f"run {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def exit_code(self, image: str, *command: str) -> int:
        """Run a command in a throwaway container of an image and return its exit code."""
        return run(["docker", "run", "--rm", "--entrypoint", command[0], image, *command[1:]], check=False).returncode

    def make(self, *args: str, file: str = "compose.prod.yaml", check: bool = True, timeout: float = 900):
        """A Makefile target as the user types it, with the environment of `file`'s stack (the live one by
        default); its output (stdout and stderr) in .output."""
        result = run(["make", *args], cwd=self.path, env=self.env(file), timeout=timeout, check=False)
        result.output = result.stdout + result.stderr
        if check and result.returncode != 0:
            pytest.fail(f"make {' '.join(args)} exited {result.returncode}\n{result.output[-4000:]}")
        return result

    def up_live(self) -> None:
        self.live("up", "-d", "--wait", "--wait-timeout", str(TIMEOUT), timeout=TIMEOUT + 60)

    def remove(self) -> None:
        for file in ("compose.yaml", LIVE):
            # Every profile: a service a profile leaves out (offsite, when off-site copies are off) is no orphan.
            down = ("--profile", "*", "down", "-v", "--remove-orphans", "--rmi", "local", "--timeout", "5")
            self.compose(file, *down, check=False)
        run(["docker", "rmi", "-f", *self.images.values()], check=False)


class MailedProject(Project):
    """A live stack whose mail goes to an SMTP catcher the test runs beside it (SMTP_CATCHER, reached as `mail`:
    EMAIL_URL=smtp://mail:1025 in its prod.env). deploy_with_mail() builds and starts both."""

    @property
    def catcher(self) -> str:
        return f"{self.slug}-smtp"

    def mails(self, to: str = "") -> list[email.message.EmailMessage]:
        """The mails the catcher received (for this address, if given): it prints each between two banners."""
        log = run(["docker", "logs", self.catcher]).stdout
        found = []
        for block in re.findall(r"-+ MESSAGE FOLLOWS -+\n(.*?)\n-+ END MESSAGE -+", log, re.S):
            lines = [line for line in block.splitlines() if not line.startswith(("mail options:", "rcpt options:"))]
            message = email.message_from_string("\n".join(lines), policy=email.policy.default)
            if to in str(message["To"]):
                found.append(message)
        return found


@contextmanager
def deploy_with_mail(project: MailedProject, scratch: Path) -> Iterator[MailedProject]:
    """`make build-live` and `make deploy`, then the SMTP catcher on the stack's network; everything removed after."""
    (scratch / "Dockerfile").write_text(SMTP_CATCHER)
    started = time.monotonic()
    try:
        run(["docker", "build", "-t", f"{project.catcher}:e2e", str(scratch)], timeout=600)
        project.make("build-live", timeout=1800)
        project.make("deploy", timeout=TIMEOUT + 300)
        app = project.inspect(project.container("compose.prod.yaml", "app"))
        network = next(iter(app["NetworkSettings"]["Networks"]))
        run(["docker", "rm", "-f", project.catcher], check=False)
        catcher = ["--name", project.catcher, "--network", network, "--network-alias", "mail", f"{project.catcher}:e2e"]
        run(["docker", "run", "-d", *catcher])
        print(f"\n[e2e] {project.slug}: built and deployed in {time.monotonic() - started:.0f}s")
        yield project
    finally:
        print(project.logs("compose.prod.yaml", "app")[-6000:])
        project.remove()
        run(["docker", "rm", "-f", project.catcher], check=False)
        images = [f"{project.slug}-{image}:e2e" for image in ("app", "static", "offsite", "smtp")]
        run(["docker", "rmi", "-f", *images], check=False)


EDGE = ("compose.prod.yaml", "compose.pebble.yaml")
# The test-only override that adds pebble (read its comments); it is copied into the project.
PEBBLE = (Path(__file__).parent / "compose.pebble.yaml").read_text()


class EdgeProject(Project):
    """The baked project; its live stack runs with the edge (EDGE), or without it (LIVE) for the last test."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.http_port, self.https_port, self.pebble_port = free_port(), free_port(), free_port()
        self.trusted_proxies = ""

    def env(self, file):
        if file == "compose.yaml":
            return super().env(file)
        ports = {"HTTP_PORT": self.http_port, "HTTPS_PORT": self.https_port, "PEBBLE_PORT": self.pebble_port}
        return clean_env(
            **{k: str(v) for k, v in ports.items()},
            LIVE_PORT=str(self.live_port),
            TAG="e2e",
            TRUSTED_PROXIES=self.trusted_proxies,
            EDGE_DOMAIN=DOMAIN,
        )

    def edge(self, *args: str, **kwargs):
        return self.compose(EDGE, *args, **kwargs)

    def edge_mode(self) -> None:
        """The stack with its edge and no trusted proxy, as deployed: what a test that switched nginx behind a
        proxy (compose.behind-proxy.yaml) leaves is put back."""
        self.trusted_proxies = ""
        self.edge("up", "-d", "--wait", "--wait-timeout", str(TIMEOUT), timeout=TIMEOUT + 60)

    def remove(self) -> None:
        self.edge("--profile", "*", "down", "-v", "--remove-orphans", "--rmi", "local", "--timeout", "5", check=False)
        super().remove()

    def app_log_address(self, marker: str) -> str:
        """The client address the app's access log gives for the request whose URL holds `marker`."""
        lines = poll(
            lambda: [line for line in self.logs(EDGE, "app").splitlines() if marker in line],
            30,
            what=f"the app's log line for {marker}",
        )
        return lines[-1].split("|", 1)[-1].split()[0]

    @property
    def network(self) -> str:
        """The live stack's network of the edge and nginx (compose.prod.yaml's project name is `<slug>-live`)."""
        return f"{self.slug}-live_public"

    def network_gateway(self) -> str:
        return run(
            ["docker", "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", self.network]
        ).stdout.strip()


def answered(check):
    """check, returning None while the edge refuses the connection or the handshake (for poll)."""

    def attempt():
        try:
            return check()
        except (OSError, httpx.HTTPError):
            return None

    return attempt


def served_certificate(port: int, trust: ssl.SSLContext) -> tuple[dict, bytes]:
    """The edge's certificate for DOMAIN (SNI) on a loopback port, verified against `trust` alone."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with trust.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            return tls.getpeercert(), tls.getpeercert(binary_form=True)


def https(project: EdgeProject, trust: ssl.SSLContext, path: str = "/", **kwargs) -> httpx.Response:
    """GET https://DOMAIN/path through the edge's loopback port, over HTTP/2, trusting `trust` alone."""
    with httpx.Client(http2=True, verify=trust, timeout=30) as client:
        return client.get(
            f"https://127.0.0.1:{project.https_port}{path}",
            headers={"Host": DOMAIN, **kwargs.pop("headers", {})},
            extensions={"sni_hostname": DOMAIN},
            **kwargs,
        )


class BackupProject(Project):
    """A baked project whose live commands also get the backup schedule's variables."""

    def __init__(self, path, **settings: str):
        super().__init__(path)
        self.settings = settings

    def env(self, file):
        env = super().env(file)
        # postgres.env exported, as its comment says, so docker compose follows make pg-upgrade.
        settings = {**postgres_settings(self.path), **self.settings}
        return env if env.get("LIVE_PORT") is None else clean_env(**{**env, **settings})

    def backups(self) -> list[str]:
        listing = self.live("exec", "-T", "backup", "ls", "-1A", "/backups").stdout
        return sorted(listing.split())

    def piped(self, data: bytes, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """A live compose command with DATA on its standard input (a key, a dump)."""
        result = subprocess.run(
            self.command("compose.prod.yaml", *args),
            cwd=self.path,
            env=self.env("compose.prod.yaml"),
            input=data,
            capture_output=True,
            timeout=600,
        )
        if check and result.returncode != 0:
            pytest.fail(f"{' '.join(args)} exited {result.returncode}\n{result.stderr.decode()[-3000:]}")
        return result

    @property
    def identity(self) -> bytes:
        """The backups' private key, as the hook wrote it for the user to keep."""
        return (self.path / "backup-identity.txt").read_bytes()

    def volume(self, name: str) -> str:
        return f"{self.slug}-live_{name}"


# ---- The admin of a live stack (tests/test_e2e.py and its checks).

ADMIN_PASSWORD = "e2e-Password-1"


def signed_in(project, admin: str) -> Browser:
    """A browser signed in to the admin as `admin`."""
    browser = sign_in(project.live_port, admin, ADMIN_PASSWORD)
    assert browser, f"login failed: {project.logs(LIVE, 'app')[-3000:]}"
    return browser


# Accounts (issue 23): every login is allauth's (/accounts/login/, the admin's too), and staff need a second factor on
# the live site. The second factors this run gave each account (by live port and login): a TOTP secret and the
# recovery codes not used yet.
SECOND_FACTORS: dict[tuple[int, str], dict] = {}


def totp_code(factors: dict) -> str:
    """The authenticator app's code for factors["secret"]: never one of the 30 s step used last (allauth takes a code
    once), and never one computed in its step's last seconds (stale by the time the server checks it)."""
    import pyotp

    while int(time.time()) // 30 == factors.get("step") or time.time() % 30 > 25:
        time.sleep(1)
    now = time.time()
    factors["step"] = int(now) // 30
    return pyotp.TOTP(factors["secret"]).at(now)


def sign_in(port: int, login: str, password: str, next_path: str = "/admin/") -> Browser | None:
    """A browser signed in as a user would: allauth's login form, then the second factor (a recovery code) when the
    account has one, or, for staff without one, an authenticator app set up as the site asks (pyotp computes its
    codes). None when the password is refused."""

    browser = Browser(port)
    answer = browser.post_form(f"/accounts/login/?next={next_path}", {"login": login, "password": password})
    if answer.status_code != 302:
        return None
    factors = SECOND_FACTORS.setdefault((port, login), {"codes": []})
    while answer.headers["Location"].startswith("/accounts/2fa/authenticate/"):
        if factors["codes"]:
            code = factors["codes"].pop(0)
        else:
            code = totp_code(factors)
        answer = browser.post_form("/accounts/2fa/authenticate/", {"code": code})
        assert answer.status_code == 302, f"{login}'s second factor was refused:\n{answer.text[:1000]}"
    assert answer.status_code == 302 and not answer.headers["Location"].startswith("/accounts/confirm-email/"), (
        f"{login} has no verified address: {answer.headers.get('Location')}"
    )
    sent = browser.get(next_path)
    if sent.status_code == 302 and sent.headers["Location"].startswith("/accounts/2fa/?"):
        reauthenticated = browser.post_form("/accounts/reauthenticate/", {"password": password})
        assert reauthenticated.status_code == 302, reauthenticated.text[:500]
        # The secret is new on each GET of the page: the code is computed from the one the form is posted with.
        page = browser.get("/accounts/2fa/totp/activate/").text
        factors["secret"] = re.search(r'id="authenticator_secret"[^>]*value="([A-Z2-7]+)"', page)[1]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
        code = totp_code(factors)
        activated = browser.post("/accounts/2fa/totp/activate/", {"csrfmiddlewaretoken": token, "code": code})
        assert activated.status_code == 302, activated.text[:1000]
        page = browser.get("/accounts/2fa/recovery-codes/").text
        factors["codes"] = re.search(r'id="recovery_codes"[^>]*>([^<]*)<', page)[1].split()
    return browser


def upload(project, browser: Browser, name: str, content: bytes, title: str | None = None) -> str:
    """Add a document (its title: the file's name unless given) through the admin; the /media/ path the home page
    links it by."""
    added = browser.post_form(
        f"/admin/{project.slug}/document/add/",
        {"title": title or name, "_save": "Save"},
        files={"file": (name, content, "text/plain")},
    )
    assert added.status_code == 302, added.text[:1000]
    stem = re.escape(name.rsplit(".", 1)[0])
    link = re.search(rf'href="(/media/documents/\d{{4}}/\d{{2}}/{stem}[^"]*\.txt)"', browser.get("/").text)
    assert link, "the home page should link the uploaded document"
    return link.group(1)


# ---- Docker Swarm (issue 26): a real multi-node swarm built from containers, for tests/test_swarm.py. The test
# engine itself never enters swarm mode (on these machines that broke the embedded DNS of every other stack): the
# nodes are docker:28-dind containers on a network of their own, with a registry:2 they pull from.

DIND_IMAGE = "docker:28-dind"
REGISTRY_IMAGE = "registry:2"


class Swarm:
    """A registry and `size` Docker engines in containers on a network of their own (a fixed subnet, so a node keeps
    its address across a restart); node 1 is the manager, the others workers. Nodes pull from the registry as
    `registry:5000` (insecure) and through it as their mirror of Docker Hub (stock images the stack names, such as
    postgres:18, are pushed there under library/...); the test engine pushes to its published loopback port."""

    def __init__(self, name: str, size: int = 3):
        self.name = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        self.size = size
        self.registry_port = free_port()
        self.subnet = ""

    def address(self, number: int) -> str:
        """Node `number`'s address (.11, .12...); the registry is .2, and .3 is free for a test's S3 server."""
        return self.subnet.rsplit(".", 1)[0] + f".{10 + number}"

    def node(self, number: int) -> str:
        return f"{self.name}-node{number}"

    def host(self, number: int = 1) -> str:
        return f"tcp://{self.address(number)}:2375"

    def docker(self, *args: str, node: int = 1, check: bool = True, timeout: float = 600, **kwargs):
        return run(["docker", "-H", self.host(node), *args], check=check, timeout=timeout, **kwargs)

    def create(self) -> None:
        self.remove()
        for third in range(200, 250):  # a free /24 of 10.199.0.0/16 (another run's, or another stack's, is taken)
            subnet = f"10.199.{third}.0/24"
            created = run(["docker", "network", "create", "--subnet", subnet, self.name], check=False)
            if created.returncode == 0:
                self.subnet = subnet
                break
        assert self.subnet, "no free subnet in 10.199.200-249.0/24 for the swarm's network"
        registry = self.subnet.rsplit(".", 1)[0] + ".2"
        run(
            ["docker", "run", "-d", "--name", f"{self.name}-registry", "--network", self.name, "--ip", registry]
            + ["--network-alias", "registry", "-p", f"127.0.0.1:{self.registry_port}:5000", REGISTRY_IMAGE]
        )
        for number in range(1, self.size + 1):
            run(
                ["docker", "run", "-d", "--privileged", "--name", self.node(number), "--hostname", f"node{number}"]
                + ["--network", self.name, "--ip", self.address(number), DIND_IMAGE]
                + ["--insecure-registry", "registry:5000", "--registry-mirror", "http://registry:5000"]
            )
        for number in range(1, self.size + 1):
            poll(lambda n=number: self.docker("info", node=n, check=False).returncode == 0, 120, what="a node's engine")
        self.docker("swarm", "init", "--advertise-addr", self.address(1))
        token = self.docker("swarm", "join-token", "-q", "worker").stdout.strip()
        for number in range(2, self.size + 1):
            self.docker("swarm", "join", "--token", token, f"{self.address(1)}:2377", node=number)

    def push(self, image: str, name: str) -> str:
        """The test engine's image in the registry as `name` (repository:tag); its name for the nodes."""
        here = f"127.0.0.1:{self.registry_port}/{name}"
        run(["docker", "tag", image, here])
        try:
            run(["docker", "push", "-q", here], timeout=900)
        finally:
            run(["docker", "rmi", here], check=False)
        return f"registry:5000/{name}"

    def remove(self) -> None:
        names = [self.node(n) for n in range(1, self.size + 1)] + [f"{self.name}-registry", f"{self.name}-s3"]
        run(["docker", "rm", "-f", "-v", *names], check=False, timeout=300)
        run(["docker", "network", "rm", self.name], check=False)


class EdgeClient:
    """HTTPS requests to an edge at an address, for a name (SNI and Host) that does not resolve to it: the edge's
    own certificate for `localhost` (Caddy's local CA), checked for that name only."""

    def __init__(self, address: str, name: str = "localhost", port: int = 443):
        self.address, self.name, self.port = address, name, port
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None, timeout=15):
        connection = http.client.HTTPSConnection(self.address, self.port, timeout=timeout, context=self.context)
        connection.sock = self.context.wrap_socket(
            socket.create_connection((self.address, self.port), timeout=timeout), server_hostname=self.name
        )
        try:
            connection.request(method, path, body=body, headers={"Host": self.name, **(headers or {})})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


class Load:
    """A bounded load of our own through the edge: one thread sending GET requests one after another (about 10 a
    second), counting those that failed (an error or a status other than 200), with what failed and when."""

    def __init__(self, client: EdgeClient, path: str = "/"):
        self.client, self.path = client, path
        self.sent = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sent += 1
            try:
                status, _, _ = self.client.request("GET", f"{self.path}?load={self.sent}")
                if status != 200:
                    self.failures.append(f"{time.strftime('%H:%M:%S')} HTTP {status}")
            except (OSError, ssl.SSLError) as exc:
                self.failures.append(f"{time.strftime('%H:%M:%S')} {type(exc).__name__}: {exc}")
            self._stop.wait(0.1)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)
