"""Check the answers before any file is written; explain how to fix each bad one.

Cookiecutter renders this file with the answers, then runs it. A non-zero exit stops the bake,
and cookiecutter removes the half-made project directory.
"""

import keyword
import re
import sys

# tojson makes each answer a valid Python string literal, whatever characters it holds.
ANSWERS = {
    "project_name": {{ cookiecutter.project_name | tojson }},
    "project_slug": {{ cookiecutter.project_slug | tojson }},
    "description": {{ cookiecutter.description | tojson }},
    "author_name": {{ cookiecutter.author_name | tojson }},
    "email": {{ cookiecutter.email | tojson }},
    "domain_name": {{ cookiecutter.domain_name | tojson }},
    "python_version": {{ cookiecutter.python_version | tojson }},
    "django_version": {{ cookiecutter.django_version | tojson }},
    "postgres_version": {{ cookiecutter.postgres_version | tojson }},
    "key_value_store": {{ cookiecutter.key_value_store | tojson }},
    "use_celery": {{ cookiecutter.use_celery | tojson }},
    "ci": {{ cookiecutter.ci | tojson }},
    "deploy_target": {{ cookiecutter.deploy_target | tojson }},
}
CHOICES = {
    "python_version": ["3.14", "3.13", "3.12", "3.15"],
    "django_version": ["5.2", "6.1"],
    "postgres_version": ["18", "17", "16", "15"],
    "key_value_store": ["valkey", "redis", "none"],
    "use_celery": ["y", "n"],
    "ci": ["github", "gitlab", "none"],
    "deploy_target": ["compose", "compose+kubernetes"],
}
# Names the baked project imports or uses as a top-level folder: a package with one of these
# names would shadow it (import django -> your app).
TAKEN = {
    "django", "celery", "kombu", "redis", "valkey", "gunicorn", "psycopg2", "dj_database_url", "pytest",
    "pytest_django", "config", "test", "tests", "manage", "wait_entrypoint", "nginx", "media",
    "static", "staticfiles", "templates", "site", "app",
}
SLUG = re.compile(r"^[a-z][a-z0-9_]*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)
LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
DOMAIN = re.compile(r"^(?:localhost|(?:" + LABEL + r"\.)+[a-z][a-z]+)$")


def problems(answers: dict[str, str]) -> list[str]:
    found = []
    name, slug = answers["project_name"].strip(), answers["project_slug"]
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
    for key in ("project_name", "description", "author_name"):
        if any(char in answers[key] for char in '"\\`') or not answers[key].isprintable():
            found.append(
                f"{key} {answers[key]!r} contains a double quote, backslash, backtick or control character: "
                "these end up in Python, TOML and shell files; use plain text."
            )
    if not EMAIL.match(answers["email"].strip()):
        found.append(f"email {answers['email']!r} is not an email address: type one like 'you@example.com'.")
    domain = answers["domain_name"].strip()
    if not DOMAIN.match(domain):
        found.append(
            f"domain_name {domain!r} is not a domain name: type the bare host name, lowercase, without "
            "scheme, port or path, e.g. 'example.com' or 'www.example.org'."
        )
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


def main() -> None:
    found = problems(ANSWERS)
    if found:
        print("Cannot bake this project:", file=sys.stderr)
        for problem in found:
            print(f"  - {problem}", file=sys.stderr)
        print("Nothing was written. Run cookiecutter again with corrected answers.", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
