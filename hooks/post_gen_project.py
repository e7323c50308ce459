"""Finish the baked project: write the production secrets, prune what the answers turned off,
install the matching lock file, and say what to do next. Needs no network.
"""

import os
import secrets
import shutil
import string
import sys
from pathlib import Path

SLUG = "{{ cookiecutter.project_slug }}"
PYTHON = "{{ cookiecutter.python_version }}"
DJANGO = "{{ cookiecutter.django_version }}"
USE_STORE = "{{ cookiecutter.key_value_store }}" != "none"  # valkey or redis
USE_CELERY = "{{ cookiecutter.use_celery }}" == "y"
USE_SENTRY = "{{ cookiecutter.use_sentry }}" == "y"
CI = "{{ cookiecutter.ci }}"
KUBERNETES = "{{ cookiecutter.deploy_target }}" == "compose+kubernetes"
LICENSE = "{{ cookiecutter.open_source_license }}"
USERNAME_TYPE = "{{ cookiecutter.username_type }}"
# Frontend: none (one hand-written CSS file) or tailwind (Tailwind CSS and htmx, built on Node).
FRONTEND = "{{ cookiecutter.frontend }}"
API = "{{ cookiecutter.api }}"  # none, drf or ninja
MEDIA_STORAGE = "{{ cookiecutter.media_storage }}"  # local (a volume) or s3 (a bucket)

# Letters, digits, - and _: nothing a shell, Compose interpolation ($), a .env parser
# (quotes, #, backslash) or a URL (@ : / ? %) would read specially.
SECRET_ALPHABET = string.ascii_letters + string.digits + "-_"

# Files that exist only for an option; removed when it is off.
OPTIONAL_FILES = {
    "celery": [
        "config/celery.py",
        f"{SLUG}/tasks.py",
        "tests/test_tasks.py",
        "k8s/base/worker-deployment.yaml",
        "k8s/base/beat-deployment.yaml",
    ],
    "store": [".envs/store.env.example"]
    + [f"k8s/base/store-{kind}.yaml" for kind in ("statefulset", "service", "network-policy")],
    "kubernetes": ["k8s"],
    "github": [".github"],
    "gitlab": [".gitlab-ci.yml", "renovate.json"],
    "license": ["LICENSE"],
    # Sign-in by email only: the unique key of an address (the username model never had one).
    "email": ["users/migrations/0002_email_key.py"],
    # Frontend: Tailwind's sources and the npm lock (tailwind), or the hand-written CSS it replaces (none).
    "tailwind": ["frontend"],
    "plain_css": [f"{SLUG}/static"],
    # API: the app's api/ package, the documents' owner (a migration) and the baked tests; one framework's files each.
    "api": [f"{SLUG}/api", f"{SLUG}/migrations/0004_document_owner.py", "tests/test_api.py"],
    "drf": [f"{SLUG}/api/drf_api.py", f"{SLUG}/api/drf_auth.py", f"{SLUG}/templates/{SLUG}/api_docs.html"],
    "ninja": [f"{SLUG}/api/ninja_api.py"],
    # Media in object storage (media_storage=s3): the bucket's storage class and its tests; or, with local media,
    # what only a media volume needs: restoring it from a backup (and its tests), and its Kubernetes claim.
    "s3": [f"{SLUG}/storage.py", "tests/test_storage.py"],
    "local_media": [
        f"{SLUG}/management/commands/restore_media.py",
        "tests/test_restore_media.py",
        "k8s/base/media-pvc.yaml",
    ],
}


def generate_secret(length: int) -> str:
    # Starts with a letter or digit, so no command line can take it for an option.
    first = secrets.choice(string.ascii_letters + string.digits)
    return first + "".join(secrets.choice(SECRET_ALPHABET) for _ in range(length - 1))


# The backups' key pair (age, X25519: age-encryption.org/v1). The hook runs under whatever Python has cookiecutter,
# with no package to lean on and no network, so the two pure functions age-keygen itself runs are written out here:
# RFC 7748's X25519 and BIP 173's bech32. The e2e tests check the pair with age itself (age-keygen -y).
X25519_P = 2**255 - 19


def x25519(scalar: bytes, u: bytes) -> bytes:
    """RFC 7748, section 5: the Montgomery ladder on Curve25519 (for a public key: u = 9, the base point)."""
    k = bytearray(scalar)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    n = int.from_bytes(k, "little")
    x1 = int.from_bytes(u, "little") & ((1 << 255) - 1)
    x2, z2, x3, z3, swap = 1, 0, x1, 1, 0
    for bit in reversed(range(255)):
        k_t = (n >> bit) & 1
        if swap ^ k_t:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = k_t
        a, b = (x2 + z2) % X25519_P, (x2 - z2) % X25519_P
        aa, bb = a * a % X25519_P, b * b % X25519_P
        e = (aa - bb) % X25519_P
        c, d = (x3 + z3) % X25519_P, (x3 - z3) % X25519_P
        da, cb = d * a % X25519_P, c * b % X25519_P
        x3, z3 = (da + cb) ** 2 % X25519_P, x1 * (da - cb) ** 2 % X25519_P
        x2, z2 = aa * bb % X25519_P, e * (aa + 121665 * e) % X25519_P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, X25519_P - 2, X25519_P) % X25519_P).to_bytes(32, "little")


BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def bech32(hrp: str, data: bytes) -> str:
    """BIP 173's encoding (age's keys: no length limit)."""
    words, acc, bits = [], 0, 0
    for byte in data:
        acc, bits = (acc << 8) | byte, bits + 8
        while bits >= 5:
            bits -= 5
            words.append((acc >> bits) & 31)
    if bits:
        words.append((acc << (5 - bits)) & 31)
    check = 1
    for value in [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + words + [0] * 6:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate((0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)):
            check ^= gen if (top >> i) & 1 else 0
    check ^= 1
    return hrp + "1" + "".join(BECH32[d] for d in words + [(check >> 5 * (5 - i)) & 31 for i in range(6)])


def age_key_pair() -> tuple[str, str]:
    """A fresh age identity (AGE-SECRET-KEY-1...) and its recipient (age1...), as age-keygen makes them."""
    secret = secrets.token_bytes(32)
    recipient = bech32("age", x25519(secret, (9).to_bytes(32, "little")))
    return bech32("age-secret-key-", secret).upper(), recipient


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def write_production_env(project: Path) -> None:
    """.envs/prod.env (the app's), db.env, offsite.env and store.env = the committed examples with fresh secrets: each
    service of compose.prod.yaml reads only its own file, and a placeholder gets the same value in each."""
    generated = {
        "<SECRET_KEY>": generate_secret(64),
        "<POSTGRES_PASSWORD>": generate_secret(32),
        "<APP_DB_PASSWORD>": generate_secret(32),
    }
    if USE_STORE:
        generated["<REDIS_PASSWORD>"] = generate_secret(32)
    # The backups are encrypted to this recipient; only its identity (written below, for you to keep off the
    # server) decrypts them. The server authenticates each backup it takes with BACKUP_AUTH_KEY.
    identity, generated["<BACKUP_RECIPIENT>"] = age_key_pair()
    generated["<BACKUP_AUTH_KEY>"] = generate_secret(64)
    # offsite.env holds no generated secret: the storage's keys, which the user fills in.
    for name in ["prod", "db", "backup", "offsite"] + (["store"] if USE_STORE else []):
        write_env_file(project, name, generated)
    write_private(project / "backup-identity.txt", IDENTITY_HEADER.format(recipient=generated["<BACKUP_RECIPIENT>"]) + identity + "\n")
    # The edge's domains and ACME settings: no secret, but set per server like the others, hence beside them.
    write_env_file(project, "edge", {}, header=EDGE_HEADER)


EDGE_HEADER = (
    "# The edge's settings for compose.prod.yaml (domains, ACME), written by the template from edge.env.example.\n"
    "# No secret here; git-ignored like the rest of .envs/, since each server sets its own domain.\n"
)
SECRETS_HEADER = (
    "# Production settings for compose.prod.yaml, generated with fresh secrets by the template.\n"
    "# Git-ignored: never commit this file or copy it into an image. Keep a copy somewhere safe.\n"
)


IDENTITY_HEADER = (
    "# The private key that decrypts this project's backups (age; README, \"Backups and restore\").\n"
    "# Keep it OFF the server, in your password manager: the server only ever needs the public key below\n"
    "# (BACKUP_RECIPIENT in .envs/backup.env). A restore reads it from this file, or from BACKUP_IDENTITY=<path>.\n"
    "# public key: {recipient}\n"
)


def write_private(path: Path, text: str) -> None:
    """Created owner-only, never readable by others, not even between a write and a chmod."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    if hasattr(os, "fchmod"):  # a file left by an earlier bake keeps its old mode otherwise
        os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as target:
        target.write(text)


def write_env_file(project: Path, name: str, generated: dict[str, str], header: str = SECRETS_HEADER) -> None:
    lines = (project / f".envs/{name}.env.example").read_text().splitlines(keepends=True)
    while lines and lines[0].startswith("#"):  # the example's own introduction
        lines.pop(0)
    text = "".join(lines)
    for placeholder, value in generated.items():
        text = text.replace(placeholder, value)
    write_private(project / f".envs/{name}.env", header + text)


def install_lock_file(project: Path) -> None:
    """The template ships one uv.lock per combination of Python, Django, services (Valkey and Redis
    share one: both use redis-py) and Sentry. check_answers.lock_file names the same file."""
    services = "celery" if USE_CELERY else "store" if USE_STORE else "base"
    locks = project / ".locks"
    api = "" if API == "none" else f"-{API}"  # API: its framework's own locks
    s3 = "-s3" if MEDIA_STORAGE == "s3" else ""  # media_storage=s3: its own locks (django-storages, boto3)
    chosen = locks / f"py{PYTHON}-django{DJANGO}-{services}{'-sentry' if USE_SENTRY else ''}{api}{s3}.lock"
    if not chosen.exists():
        sys.exit(f"The template has no lock file {chosen.name}; run scripts/lock.py in the template.")
    # Lock files are copied without rendering (they are large); only the project's name differs.
    text = chosen.read_text().replace('name = "lockproject"', f'name = "{SLUG.replace("_", "-")}"')
    (project / "uv.lock").write_text(text)
    shutil.rmtree(locks)


def prune(project: Path) -> None:
    off = []
    if not USE_STORE:
        off.append("store")
    if not KUBERNETES:
        off.append("kubernetes")
    if not USE_CELERY:
        off.append("celery")
    if CI != "github":
        off.append("github")
    if CI != "gitlab":
        off.append("gitlab")
    if LICENSE == "Not open source":
        off.append("license")
    if USERNAME_TYPE != "email":
        off.append("email")
    off.append("plain_css" if FRONTEND == "tailwind" else "tailwind")
    # API: everything of it when none, else the other framework's files.
    off += ["api", "drf", "ninja"] if API == "none" else ["ninja" if API == "drf" else "drf"]
    off.append("local_media" if MEDIA_STORAGE == "s3" else "s3")  # media_storage
    for option in off:
        for relative in OPTIONAL_FILES[option]:
            remove(project / relative)


def next_steps() -> str:
    return f"""
Baked {SLUG}/. Next steps:

  cd {SLUG}
  git init && git add -A && git commit -m "Start from the template"   # .envs/prod.env stays out

  Development (Docker):   docker compose up --build --wait     -> http://localhost:8000
  Without Docker:         uv sync && uv run python manage.py migrate && uv run python manage.py runserver
  Tests:                  uv run pytest

  Live stack: .envs/prod.env holds fresh secrets (git-ignored; back it up somewhere safe);
  .envs/edge.env your domain and the contact for its HTTPS certificates.
  backup-identity.txt decrypts your backups: move it into your password manager, never onto the server.
  See README.md, "Deploying the live stack".
"""


def main() -> None:
    project = Path.cwd()
    write_production_env(project)
    install_lock_file(project)
    prune(project)
    print(next_steps())


if __name__ == "__main__":
    main()
