"""Check the answers before anything is written; explain how to fix each bad one, all at once.

cookiecutter.json's last value, __answers_checked, passes every answer through refuse_bad_answers, a Jinja
filter that cookiecutter (and cruft) load from this file through "_extensions". It runs in cookiecutter's own
process, after the last question and before any directory is made: a refusal ends the bake with the
message alone (a failing hook script would be followed by cookiecutter's traceback). At a terminal,
__text_answers_checked does the same right after the six typed answers, before the ten choices are asked.
A refusal prints the command that asks again (or, with --no-input, bakes) with the answers given, so a
retry means correcting one value, not answering every question again.
"""

import ast
import json
import keyword
import re
import shlex
import shutil
import sys
from pathlib import Path

from cookiecutter import __version__ as cookiecutter_version
from cookiecutter.utils import create_env_with_context, simple_filter

PROJECT = Path(__file__).resolve().parent / "{{cookiecutter.project_slug}}"
CHOICES = {
    "python_version": ["3.14", "3.13", "3.12", "3.15"],
    "django_version": ["5.2", "6.1"],
    "postgres_version": ["18", "17", "16", "15"],
    "key_value_store": ["valkey", "redis", "none"],
    "use_celery": ["y", "n"],
    "username_type": ["email", "username"],
    "use_sentry": ["n", "y"],
    "ci": ["github", "gitlab", "none"],
    "deploy_target": ["compose", "compose+kubernetes"],
    # Media in object storage (issue 26): uploads on a volume (local) or in an S3-compatible bucket.
    "media_storage": ["local", "s3"],
}
# Names the baked project imports or uses as a top-level folder: a package with one of these
# names would shadow it (import django -> your app).
# fmt: off
TAKEN = {
    "django", "celery", "kombu", "redis", "valkey", "gunicorn", "psycopg2", "dj_database_url", "pytest",
    "pytest_django", "sentry_sdk", "config", "test", "tests", "manage", "wait_entrypoint", "nginx", "media",
    "static", "staticfiles", "templates", "site", "app", "users",
}
# fmt: on
SLUG = re.compile(r"^[a-z][a-z0-9_]*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)
LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
DOMAIN = re.compile(r"^(?:localhost|(?:" + LABEL + r"\.)+[a-z][a-z]+)$")


def lock_file(answers: dict[str, str]) -> Path:
    """The shipped uv.lock for these answers (post_gen_project.py installs the same one)."""
    services = "celery" if answers["use_celery"] == "y" else "store" if answers["key_value_store"] != "none" else "base"
    sentry = "-sentry" if answers["use_sentry"] == "y" else ""
    versions = f"py{answers['python_version']}-django{answers['django_version']}"
    api = "" if answers.get("api", "none") == "none" else f"-{answers['api']}"  # API: its framework's own locks
    s3 = "-s3" if answers.get("media_storage", "local") == "s3" else ""  # media_storage=s3: django-storages, boto3
    return PROJECT / ".locks" / f"{versions}-{services}{sentry}{api}{s3}.lock"


def normalized(name: str) -> str:
    """A package name as package indexes compare them (PEP 503): case, -, _ and . do not count."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_packages(answers: dict[str, str]) -> list[str]:
    lock = lock_file(answers)
    text = lock.read_text() if lock.exists() else ""
    # "lockproject" stands for the project itself in the shipped locks.
    return [name for name in re.findall(r'^\[\[package\]\]\nname = "([^"]+)"', text, re.M) if name != "lockproject"]


def installed_apps(answers: dict[str, str]) -> list[str]:
    """INSTALLED_APPS of the settings these answers bake (every string assigned or added to it)."""
    # Rendered as cookiecutter renders the project's files (same environment, filters and strictness).
    environment = create_env_with_context({"cookiecutter": answers})
    settings = environment.from_string((PROJECT / "config/settings.py").read_text())
    apps = []
    for node in ast.walk(ast.parse(settings.render(cookiecutter=answers))):
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(target, ast.Name) and target.id == "INSTALLED_APPS" for target in targets):
                apps += [item.value for item in ast.walk(node.value) if isinstance(item, ast.Constant)]
    return apps


def other_apps_labelled(answers: dict[str, str], slug: str) -> list[str]:
    """The apps besides the project's own whose label is its name. A label is the last part of an app's
    name: django.contrib.messages is "messages", as the project's app would be."""
    return [app for app in installed_apps(answers) if app != slug and app.rpartition(".")[2] == slug]


def problems(answers: dict[str, str]) -> list[str]:
    """Every problem of these answers. Before the choices are answered (the early check), only the typed
    answers' own problems: those that depend on a choice wait for it."""
    found = []
    name, slug = answers["project_name"].strip(), answers["project_slug"]
    answered = all(key in answers for key in CHOICES)
    choices_valid = answered and all(answers[key] in allowed for key, allowed in CHOICES.items())
    if not name:
        found.append('project_name is empty: give the project a name, e.g. "Acme Shop".')
    if not slug:
        found.append('project_slug is empty: type a package name such as "acme_shop".')
    elif not SLUG.match(slug):
        suggestion = re.sub(r"[^a-z0-9_]+", "_", slug.lower()).strip("_")
        suggestion = suggestion if suggestion and suggestion[0].isalpha() else f"project_{suggestion}".rstrip("_")
        found.append(
            f"project_slug {slug!r} is not a lowercase Python identifier: use lowercase letters, digits "
            f"and underscores, starting with a letter (e.g. {suggestion!r})."
        )
    elif keyword.iskeyword(slug) or slug in TAKEN or slug in sys.stdlib_module_names:
        found.append(
            f"project_slug {slug!r} would shadow the module or folder {slug!r} that the project uses: "
            f"pick another name, e.g. '{slug}_site' or 'my_{slug}'."
        )
    elif choices_valid and (apps := other_apps_labelled(answers, slug)):
        found.append(
            f"project_slug {slug!r} is the label of {apps[0]}, which the project installs: Django would refuse to "
            f"start (Application labels aren't unique); pick another name, e.g. '{slug}_site' or 'my_{slug}'."
        )
    elif choices_valid and (same := [p for p in locked_packages(answers) if normalized(p) == normalized(slug)]):
        found.append(
            f"project_slug {slug!r} is the name of the package {same[0]!r} that the project depends on: uv would "
            f"not tell the project from it; pick another name, e.g. '{slug}_site' or 'my_{slug}'."
        )
    for key in ("project_name", "description", "author_name"):
        if any(char in answers[key] for char in '"\\`') or not answers[key].isprintable():
            found.append(
                f"{key} {answers[key]!r} contains a double quote, backslash, backtick or control character: "
                "these end up in Python, TOML and shell files; use plain text."
            )
    if not EMAIL.match(answers["email"].strip()):
        found.append(f"email {answers['email']!r} is not an email address: type one like 'you@example.com'.")
    # cookiecutter.json trims and lower-cases the domain once, into the value every baked file gets.
    domain = answers["__domain_name"]
    if not DOMAIN.match(domain):
        found.append(
            f"domain_name {domain!r} is not a domain name: type the bare host name, without "
            "scheme, port or path, e.g. 'example.com' or 'www.example.org'."
        )
    if not answered:
        return found
    for key, allowed in CHOICES.items():
        if answers[key] not in allowed:
            found.append(f"{key} {answers[key]!r} is not one of {', '.join(allowed)}: pick one of those.")
    if answers["use_celery"] == "y" and answers["key_value_store"] == "none":
        found.append(
            "use_celery=y needs a key-value store (it is Celery's broker): answer key_value_store=valkey "
            "(or redis), or use_celery=n."
        )
    if answers["python_version"] == "3.15" and answers["django_version"] != "6.1":
        found.append(
            f"python_version=3.15 needs django_version=6.1 (Django {answers['django_version']} does not support "
            "Python 3.15): answer django_version=6.1, or python_version=3.14."
        )
    return found


# cookiecutter's options that take a value (kept in the retry command), and its options that the retry sets.
VALUE_OPTIONS = {"-c", "--checkout", "--directory", "--replay-file", "-o", "--output-dir", "--config-file"}
VALUE_OPTIONS |= {"--debug-file", "--accept-hooks", "--extra-context", "--extra-context-file"}  # the last two: cruft's


def changed_answers(answers: dict[str, str]) -> dict[str, str]:
    """The answers that differ from their defaults: a default derived from an earlier answer (the slug from the
    name) then follows a corrected name."""
    questions = json.loads((PROJECT.parent / "cookiecutter.json").read_text())
    environment = create_env_with_context({"cookiecutter": answers})
    changed = {}
    for key, value in answers.items():
        if key.startswith("_") or key not in questions:
            continue
        default = questions[key][0] if isinstance(questions[key], list) else questions[key]
        if value != environment.from_string(str(default)).render(cookiecutter=answers):
            changed[key] = value
    return changed


def retry_command(answers: dict[str, str]) -> str:
    """The command line this bake was started with, its answers replaced by the ones given: with --no-input it
    bakes them, without it asks again with them as the defaults (Enter keeps one)."""
    changed = changed_answers(answers)
    program = Path(sys.argv[0])
    cruft = program.name == "cruft"
    if not (cruft or program.name == "cookiecutter" or program.parent.name == "cookiecutter"):
        # Not cookiecutter's command line (a script, pytest): the answers, as cookiecutter takes them.
        return "cookiecutter TEMPLATE " + " ".join(shlex.quote(f"{k}={v}") for k, v in changed.items())
    kept, args = [], iter(sys.argv[1:])
    for arg in args:
        if arg in ("--extra-context", "--extra-context-file"):
            next(args, None)
        elif arg in VALUE_OPTIONS:
            kept += [arg, next(args, "")]
        elif arg.startswith("-") or "=" not in arg:
            kept.append(arg)  # an option, the template, cruft's subcommand
    if cruft:
        kept += ["--extra-context", json.dumps(changed)] if changed else []
    else:
        kept += [f"{key}={value}" for key, value in changed.items()]
    on_path = shutil.which("cookiecutter") and Path(shutil.which("cookiecutter")).resolve() == program.resolve()
    command = ["cruft"] if cruft else ["cookiecutter"] if on_path else ["uvx", f"cookiecutter=={cookiecutter_version}"]
    return " ".join(shlex.quote(part) for part in command + kept)


def refuse(found: list[str], answers: dict[str, str]) -> None:
    print("Cannot bake this project:", file=sys.stderr)
    for problem in found:
        print(f"  - {problem}", file=sys.stderr)
    print("Nothing was written. To try again with your answers, correct the ones above in:", file=sys.stderr)
    print(f"  {retry_command(answers)}", file=sys.stderr)
    sys.exit(1)


@simple_filter
def refuse_bad_text_answers(answers: dict[str, str]) -> str:
    """After the six typed answers, before the choices: at a terminal only. Without one (--no-input, a script)
    every problem waits for refuse_bad_answers, which reports them all together."""
    if sys.stdin.isatty() and "--no-input" not in sys.argv and (found := problems(answers)):
        refuse(found, answers)
    return "yes"


@simple_filter
def refuse_bad_answers(answers: dict[str, str]) -> str:
    found = problems(answers)
    if found:
        refuse(found, answers)
    return "yes"
