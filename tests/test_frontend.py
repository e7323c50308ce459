"""Issue 25, the frontend option: `tailwind` builds Tailwind CSS v4 and htmx on Node in the Dockerfile's `assets` stage
(never in the app or nginx image), and rebuilds the CSS within seconds in development (`make up`, `make watch`);
`none` keeps the hand-written CSS and leaves no trace of Node. The live and development stacks are baked as a user
bakes them ("E2E Frontend ..."), each shared by its class (conftest's STACKS). The e2e part needs a Docker engine
(skipped without one, except under CI) and, for the browser checks, Debian's chromium."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from support import (
    DOMAIN,
    E2E_VARIANTS,
    LIVE,
    TEMPLATE,
    TIMEOUT,
    WATCH,
    Browser,
    Project,
    answers,
    bake,
    chromium,
    clean_env,
    image_files,
    lint_env,
    poll,
    require_engine,
    run,
    stack_name,
)

# The answers of both stacks (a seed row of the covering set): the defaults, without a store (no worker to build).
OPTIONS = answers(**E2E_VARIANTS["frontend"])
# Planted before the build: a template in another app's templates/ folder (so every app's are scanned) using a
# class no other template uses, and the same kind of class in Python code and the README (never scanned).
PROBE_TEMPLATE = "users/templates/users/frontend_probe.html"
TEMPLATE_ONLY_CLASS = "tracking-widest"
NOT_IN_A_TEMPLATE = "bg-fuchsia-900"  # a real Tailwind class, named only outside the templates
MADE_UP_CLASS = "e2e-made-up-class"


def css_rule(css: str, name: str) -> bool:
    """The stylesheet defines the class (minified or not: `.name{` or `.name {`)."""
    return re.search(rf"\.{re.escape(name)}\s*\{{", css) is not None


# ---- Baking: both answers, no engine needed.


def test_none_keeps_the_hand_written_css_and_no_trace_of_node(cookies):
    project = bake(cookies, frontend="none", ci="github")
    slug = project.name
    assert (project / slug / "static" / slug / "site.css").is_file()
    assert not (project / "frontend").exists()
    for name in ("Dockerfile", "compose.yaml", "compose.watch.yaml", ".github/dependabot.yml", ".gitignore"):
        text = (project / name).read_text()
        assert not re.search(r"node|npm|tailwind|htmx|assets", text, re.I), f"{name} mentions the frontend build"
    assert "/dist/" not in (project / ".dockerignore").read_text()
    home = (project / slug / "templates" / slug / "home.html").read_text()
    assert "htmx" not in home and f"{slug}/site.css" in home


def test_tailwind_ships_the_lock_unrendered_and_pre_commit_checks_it(cookies):
    project = bake(cookies, frontend="tailwind", ci="github")
    slug = project.name
    assert not (project / slug / "static").exists(), "the hand-written CSS stays out of a Tailwind project"
    source = TEMPLATE / "{{cookiecutter.project_slug}}" / "frontend"
    for name in ("package.json", "package-lock.json"):
        assert (project / "frontend" / name).read_bytes() == (source / name).read_bytes()
    locked = json.loads((project / "frontend/package-lock.json").read_text())["packages"]
    assert {"node_modules/@tailwindcss/cli", "node_modules/htmx.org", "node_modules/tailwindcss"} <= set(locked)
    # Dependabot and pre-commit know the npm files.
    assert "package-ecosystem: npm\n    directory: /frontend" in (project / ".github/dependabot.yml").read_text()
    hooks = (project / ".pre-commit-config.yaml").read_text()
    assert "id: check-json" in hooks and "python frontend/check_lock.py" in hooks
    # The lock check: in step passes; a package.json edit the lock lacks fails with the command that fixes it.
    check = ["python", "frontend/check_lock.py"]
    assert run(check, cwd=project).returncode == 0
    package = project / "frontend/package.json"
    package.write_text(package.read_text().replace('"htmx.org": "4.0.1"', '"htmx.org": "4.0.2"'))
    stale = run(check, cwd=project, check=False)
    assert stale.returncode == 1 and "does not match package.json" in stale.stdout and "npm install" in stale.stdout


def test_make_lint_checks_the_npm_files_and_refuses_a_stale_lock(cookies):
    """pre-commit (make lint, as a user runs it on a fresh bake): package.json and its lock parse and agree; a
    version bumped in package.json alone fails the run, naming the fix."""
    project = bake(cookies, project_name="Frontend Lint", **{**OPTIONS, "python_version": "3.13"})  # lint_env's Python
    env = lint_env()
    result = run(["make", "lint"], cwd=project, env=env, timeout=900)
    for hook in ("check json", "frontend/package-lock.json matches frontend/package.json"):
        assert re.search(rf"^{re.escape(hook)}\.+Passed$", result.stdout, re.M), f"{hook}:\n{result.stdout}"
    package = project / "frontend/package.json"
    package.write_text(package.read_text().replace('"tailwindcss": "4.3.5"', '"tailwindcss": "4.3.6"'))
    stale = run(["make", "lint"], cwd=project, env=env, timeout=900, check=False)
    assert stale.returncode != 0 and re.search(r"^frontend/package-lock\.json matches.*\.+Failed$", stale.stdout, re.M)
    assert "does not match package.json" in stale.stdout and "npm install" in stale.stdout, stale.stdout


def test_the_watch_override_syncs_the_sources_into_the_assets_watcher(cookies):
    project = bake(cookies, **OPTIONS)
    dist = f"/app/{project.name}/static/{project.name}/dist"

    def config(*files: str) -> dict:
        flags = [arg for name in files for arg in ("-f", name)]
        return json.loads(run(["docker", "compose", *flags, "config", "--format", "json"], cwd=project).stdout)

    mounted = config("compose.yaml")["services"]
    assert {(v["type"], v["target"]) for v in mounted["assets"]["volumes"]} == {("bind", "/app")}
    watched = config(*WATCH)["services"]
    for service in ("app", "assets"):
        assert ("volume", dist) in {(v["type"], v["target"]) for v in watched[service]["volumes"]}, service
        assert not any(v["type"] == "bind" for v in watched[service]["volumes"]), f"{service} mounts the source"
    (sync,) = [rule for rule in watched["assets"]["develop"]["watch"] if rule["action"] == "sync"]
    assert sync["target"] == "/app" and ".envs/" in sync["ignore"]
    rebuilds = {
        Path(rule["path"]).name for rule in watched["assets"]["develop"]["watch"] if rule["action"] == "rebuild"
    }
    assert rebuilds == {"package.json", "package-lock.json"}


# ---- The live stack.


@pytest.fixture(scope="class")
def frontend_live(cookies_session):
    """The Tailwind project's live images (make build-live, as a user builds them) and its live stack, migrated and
    up behind a proxy, with twelve documents: two pages on the home page."""
    require_engine()
    path = bake(cookies_session, project_name=stack_name("E2E Frontend Live"), domain_name=DOMAIN, **OPTIONS)
    project = Project(path)
    (path / PROBE_TEMPLATE).write_text(f'<p class="{TEMPLATE_ONLY_CLASS}">probe</p>\n')
    views = path / project.slug / "views.py"
    views.write_text(views.read_text() + f'\nNOT_A_TEMPLATE = "{NOT_IN_A_TEMPLATE} {MADE_UP_CLASS}"\n')
    with (path / "README.md").open("a") as readme:
        readme.write(f'\n<p class="{NOT_IN_A_TEMPLATE}">not a template</p>\n')
    project.remove()
    try:
        started = time.monotonic()
        run(["make", "build-live", "TAG=e2e"], cwd=path, env=clean_env(), timeout=1500)
        print(f"\n[frontend] {project.slug}: live images built in {time.monotonic() - started:.0f}s")
        project.run_once("app", "python", "manage.py", "migrate", "--noinput")
        project.up_live()
        documents = (
            "from django.core.files.base import ContentFile; "
            f"from {project.slug}.models import Document; "
            "[Document.objects.create(title=f'Document {n:02}', file=ContentFile(b'x', name=f'doc{n}.txt')) "
            "for n in range(1, 13)]"
        )
        project.live("exec", "-T", "app", "python", "manage.py", "shell", "-c", documents)
        yield project
    finally:
        print(project.logs(LIVE)[-6000:])
        project.remove()


def stylesheet(project: Project) -> tuple[str, requests.Response]:
    home = Browser(project.live_port).get("/")
    assert home.status_code == 200, home.text[:500]
    link = re.search(rf'href="(/static/{project.slug}/dist/site\.[0-9a-f]{{12}}\.css)"', home.text)
    assert link, "the home page should link the built CSS by a hashed name"
    return link.group(1), Browser(project.live_port).get(link.group(1), headers={"Accept-Encoding": "gzip"})


@pytest.mark.e2e
class TestTailwindLive:
    def test_1_the_built_css_is_served_hashed_cached_and_holds_only_the_templates_classes(self, frontend_live):
        path, css = stylesheet(frontend_live)
        assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
        assert "max-age=31536000" in css.headers["Cache-Control"] and css.headers["Content-Encoding"] == "gzip"
        assert path not in frontend_live.logs(LIVE, "app"), "nginx serves it, not the app"
        text = css.text
        assert "tailwindcss v4" in text, text[:300]
        # Classes the home page uses, and one used only by a template of another app.
        for name in ("bg-slate-50", "text-emerald-900", "max-w-2xl", TEMPLATE_ONLY_CLASS):
            assert css_rule(text, name), f".{name} is not in the CSS"
        # Named in Python code and the README only, or nowhere: not built in.
        for name in (NOT_IN_A_TEMPLATE, MADE_UP_CLASS, "bg-amber-950"):
            assert not css_rule(text, name), f".{name} is in the CSS"
        script = re.search(
            rf'src="(/static/{frontend_live.slug}/dist/htmx\.min\.[0-9a-f]{{12}}\.js)"',
            Browser(frontend_live.live_port).get("/").text,
        )
        assert script, "the home page should load htmx by a hashed name"
        served = Browser(frontend_live.live_port).get(script.group(1))
        assert served.status_code == 200 and "max-age=31536000" in served.headers["Cache-Control"]
        assert "htmx" in served.text[:2000]

    def test_2_neither_image_holds_node_npm_or_node_modules(self, frontend_live):
        for image in (frontend_live.images["applayer"], frontend_live.images["staticlayer"]):
            history = run(["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image]).stdout
            assert not re.search(r"npm|node_modules|tailwindcss", history), f"{image}: {history}"
            saved = subprocess.run(["docker", "save", image], capture_output=True, timeout=600, check=True).stdout
            names = [name.split("!")[-1] for name, _ in image_files(saved)]
            assert len(names) > 100, f"too few files listed in {image}"
            found = [n for n in names if re.search(r"(^|/)node_modules/|(^|/)bin/(node|npm|npx)$", n)]
            assert not found, f"{image} holds {found[:10]}"
        # The nginx image has the built files under their hashed names; the app image only their manifest.
        listing = run(
            ["docker", "run", "--rm", "--entrypoint", "find", frontend_live.images["staticlayer"], "/srv/static"]
        ).stdout
        assert re.search(r"/dist/site\.[0-9a-f]{12}\.css\n", listing) and re.search(
            r"htmx\.min\.[0-9a-f]{12}\.js", listing
        )
        app = frontend_live.images["applayer"]
        show = "print(open('/app/staticfiles/staticfiles.json').read())"  # no cat: the image's own Python reads it
        manifest = run(["docker", "run", "--rm", "--entrypoint", "python", app, "-c", show])
        assert f"{frontend_live.slug}/dist/site.css" in manifest.stdout
        assert frontend_live.exit_code(app, "test", "!", "-e", f"/app/{frontend_live.slug}/static") == 0

    def browser(self, project: Project, **options):
        """Chromium reaching nginx as https://DOMAIN would (its name mapped to loopback, forwarded as HTTPS)."""
        return chromium(
            f"--host-resolver-rules=MAP {DOMAIN} 127.0.0.1",
            extra_http_headers={"X-Forwarded-Proto": "https"},
            **options,
        )

    def test_3_htmx_pages_without_a_navigation_with_the_csrf_token_and_no_csp_violation(self, frontend_live):
        url = f"http://{DOMAIN}:{frontend_live.live_port}/"
        with self.browser(frontend_live) as page:
            requests_made = []
            page.on("request", lambda request: requests_made.append(request))
            page.goto(url)
            assert page.locator("text=Page 1 of 2").count() == 1
            assert page.evaluate("typeof htmx") == "object", "htmx did not load"
            assert page.evaluate("document.adoptedStyleSheets.length") == 0, "htmx injected a stylesheet"
            token = json.loads(page.evaluate("document.body.getAttribute('hx-headers:inherited')"))["X-CSRFToken"]
            assert re.fullmatch(r"[A-Za-z0-9]{64}", token), token
            page.evaluate("window.e2eSamePage = true")  # gone if the browser loads a new page
            navigations = []
            page.on("framenavigated", lambda frame: navigations.append(frame.url))
            page.click("text=Older")
            page.wait_for_selector("text=Page 2 of 2", timeout=10_000)
            assert page.evaluate("window.e2eSamePage") is True, "the click loaded a whole new page"
            assert "Document 01" in page.content() and "Document 12" not in page.content()
            assert page.url.endswith("/?page=2"), page.url  # pushed into the history
            htmx_calls = [r for r in requests_made if r.headers.get("hx-request") == "true"]
            assert len(htmx_calls) == 1, [r.url for r in requests_made]
            assert htmx_calls[0].headers.get("x-csrftoken") == token, htmx_calls[0].headers
            page.click("text=Newer")
            page.wait_for_selector("text=Page 1 of 2", timeout=10_000)
            assert page.evaluate("window.e2eSamePage") is True
            assert page.csp_violations == [], page.csp_violations

    def test_4_without_javascript_the_links_page_as_plain_links(self, frontend_live):
        url = f"http://{DOMAIN}:{frontend_live.live_port}/"
        with self.browser(frontend_live, java_script_enabled=False) as page:
            page.goto(url)
            page.click("text=Older")
            page.wait_for_url("**/?page=2")
            assert page.locator("text=Page 2 of 2").count() == 1 and "Document 01" in page.content()

    def test_5_the_home_page_is_styled_by_tailwind(self, frontend_live, tmp_path):
        url = f"http://{DOMAIN}:{frontend_live.live_port}/"
        with self.browser(frontend_live) as page:
            page.goto(url)
            page.wait_for_load_state("networkidle")
            shot = tmp_path / "home.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"\n[frontend] screenshot of the home page: {shot}")
            assert shot.stat().st_size > 5000
            style = page.evaluate(
                """() => {
                    const css = (selector) => getComputedStyle(document.querySelector(selector));
                    return {body: css('body').backgroundColor, h1: css('h1').fontSize, weight: css('h1').fontWeight,
                            link: css('nav[aria-label="Document pages"] a').borderTopLeftRadius};
                }"""
            )
            # Tailwind v4's palette is OKLCH (bg-slate-50); text-3xl is 1.875rem; `rounded` 0.25rem.
            assert style["body"].startswith("oklch(0.984"), style
            assert style == {**style, "h1": "30px", "weight": "700", "link": "4px"}, style
            assert page.csp_violations == [], page.csp_violations

    def test_6_the_account_pages_wear_the_sites_css(self, frontend_live):
        """allauth's pages (its templates in base.html) take the built CSS: the home page links to them, and the
        login form's fields and button are styled, with no CSP violation."""
        with self.browser(frontend_live) as page:
            page.goto(f"http://{DOMAIN}:{frontend_live.live_port}/")
            page.click('nav[aria-label="Account"] >> text=Sign in')
            page.wait_for_load_state("networkidle")
            assert page.url.split("?")[0].endswith("/accounts/login/"), page.url
            style = page.evaluate(
                """() => {
                    const css = (selector) => getComputedStyle(document.querySelector(selector));
                    return {body: css('body').backgroundColor, field: css('main input[type="password"]').borderTopWidth,
                            button: css('main button[type="submit"]').backgroundColor};
                }"""
            )
            assert style["body"].startswith("oklch(0.984") and style["field"] == "1px", style
            assert style["button"].startswith("oklch(0.432"), style  # bg-emerald-800
            assert page.csp_violations == [], page.csp_violations


# ---- The development stack: make up (bind mount), then make watch (sync).


@pytest.fixture(scope="class")
def frontend_dev(cookies_session):
    require_engine()
    path = bake(cookies_session, project_name=stack_name("E2E Frontend Dev"), domain_name=DOMAIN, **OPTIONS)
    project = Project(path)
    project.remove()
    try:
        yield project
    finally:
        print(project.logs(WATCH)[-4000:])
        project.remove()


def served_css(project: Project) -> str:
    response = requests.get(
        f"http://127.0.0.1:{project.ports['APP_PORT']}/static/{project.slug}/dist/site.css", timeout=5
    )
    return response.text if response.status_code == 200 else ""


def edit_and_time(project: Project, path: Path, old: str, new: str, rule: str) -> float:
    """Save an edit, and the seconds until the development server serves CSS with `rule` in it."""
    assert not css_rule(served_css(project), rule), f".{rule} is in the CSS before the edit"
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1))
    saved = time.monotonic()
    poll(lambda: css_rule(served_css(project), rule), 30, interval=0.2, what=f".{rule} in the served CSS")
    return time.monotonic() - saved


def edits(project: Project, tag: str) -> dict[str, float]:
    """A template edit (a new class) and a CSS edit (a new rule), timed."""
    home = project.path / project.slug / "templates" / project.slug / "home.html"
    css = project.path / "frontend" / "site.css"
    template_class = {"up": "bg-lime-300", "watch": "bg-rose-300"}[tag]
    return {
        "template": edit_and_time(
            project, home, 'id="documents" class="', f'id="documents" class="{template_class} ', template_class
        ),
        "css": edit_and_time(
            project,
            css,
            "@layer components {",
            f".e2e-{tag}-rule {{ color: red; }}\n@layer components {{",
            f"e2e-{tag}-rule",
        ),
    }


@pytest.mark.e2e
class TestTailwindDevelopment:
    def test_1_make_up_rebuilds_the_css_on_a_save_without_a_restart(self, frontend_dev):
        project = frontend_dev
        env = project.env("compose.yaml")
        try:
            result = run(["make", "up"], cwd=project.path, env=env, timeout=TIMEOUT + 900, check=False)
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            before = {s: project.inspect(project.container("compose.yaml", s))["State"] for s in ("app", "assets")}
            css = served_css(project)
            assert css_rule(css, "bg-slate-50") and not css_rule(css, "bg-lime-300")
            built = project.path / project.slug / "static" / project.slug / "dist" / "site.css"
            assert built.stat().st_uid == project.path.stat().st_uid, "the built CSS is not the checkout owner's"
            seconds = edits(project, "up")
            print(f"\n[frontend] make up: served {seconds}")
            assert max(seconds.values()) < 5, seconds
            for service, state in before.items():
                now = project.inspect(project.container("compose.yaml", service))["State"]
                assert now["StartedAt"] == state["StartedAt"], f"{service} was restarted"
        finally:
            print(project.logs("compose.yaml")[-3000:])
            project.compose("compose.yaml", "down", "-v", "--remove-orphans", "--timeout", "5", check=False)

    def test_2_make_watch_rebuilds_the_css_on_a_save_without_a_restart(self, frontend_dev, tmp_path):
        project = frontend_dev
        log = tmp_path / "watch.log"
        with log.open("w") as output:
            # In a session of its own: Ctrl-C at a terminal reaches make, its shell and compose alike (below).
            watcher = subprocess.Popen(
                ["make", "watch"],
                cwd=project.path,
                env=project.env(WATCH),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            poll(
                lambda: "Watch enabled" in log.read_text(errors="replace") or watcher.poll() is not None,
                TIMEOUT + 900,
                interval=2,
                what="make watch to build, start the stack and watch",
            )
            assert watcher.poll() is None, log.read_text(errors="replace")[-3000:]
            poll(lambda: css_rule(served_css(project), "bg-slate-50"), TIMEOUT, what="the app to serve the CSS")
            for service in ("app", "assets"):
                mounts = project.inspect(project.container(WATCH, service))["Mounts"]
                assert not any(m["Type"] == "bind" for m in mounts), f"{service} mounts the source: {mounts}"
            before = {s: project.inspect(project.container(WATCH, s))["State"] for s in ("app", "assets")}
            seconds = edits(project, "watch")
            print(f"\n[frontend] make watch: served {seconds}")
            assert max(seconds.values()) < 5, seconds
            for service, state in before.items():
                now = project.inspect(project.container(WATCH, service))["State"]
                assert now["StartedAt"] == state["StartedAt"], f"{service} was restarted"
        finally:
            if watcher.poll() is None:
                os.killpg(watcher.pid, signal.SIGINT)
                try:
                    watcher.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(watcher.pid, signal.SIGKILL)
                    watcher.wait()
            print(log.read_text(errors="replace")[-3000:])
            project.compose(WATCH, "down", "-v", "--remove-orphans", "--timeout", "5", check=False)
