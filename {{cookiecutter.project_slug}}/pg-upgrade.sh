#!/bin/sh
# Moves the live stack's database to a later PostgreSQL major (make pg-upgrade TO=<major> CONFIRM=yes):
# with the app stopped, a backup by the current major's pg_dump; compose.prod.yaml switched to the new
# image and a new volume named after it (mounted where that major wants it); that backup restored into it.
# The old volume is left as it was: remove it yourself once the new major has served for a while.
# Any failure before the new stack is up puts compose.prod.yaml back and restarts the old major.
set -eu
to=${1:-} confirm=${2:-}
file=compose.prod.yaml
say() { printf 'pg-upgrade: %s\n' "$*" >&2; }
# With BEHIND_PROXY=1 (make's switch) the stack runs without its edge, as compose.behind-proxy.yaml says.
live() {
  if [ "${BEHIND_PROXY:-0}" = 1 ]; then docker compose -f "$file" -f compose.behind-proxy.yaml "$@"
  else docker compose -f "$file" "$@"; fi
}

from=$(sed -n 's/^    image: postgres:\([0-9][0-9]*\)$/\1/p' "$file" | head -n 1)
[ -n "$from" ] || { say "no 'image: postgres:<major>' in $file: nothing was changed"; exit 2; }
case $to in
  '' | *[!0-9]*) say "usage: make pg-upgrade TO=<major> CONFIRM=yes (the live stack runs PostgreSQL $from)"; exit 2 ;;
esac
[ "$to" -gt "$from" ] || { say "the live stack runs PostgreSQL $from: TO must be a later major. Nothing was changed"; exit 2; }
if [ "$confirm" != yes ]; then
  say "this stops the live stack and moves its database from PostgreSQL $from to $to (a new volume, postgres${to}_data; the old one is kept)."
  say "Nothing was changed. To go ahead: make pg-upgrade TO=$to CONFIRM=yes"
  exit 2
fi

# The restore into the new major decrypts the backup taken here: it needs the backups' private key.
identity=${BACKUP_IDENTITY:-backup-identity.txt}
[ -r "$identity" ] || {
  say "the backups' private key is missing: BACKUP_IDENTITY=$identity is no readable file (the backup-identity.txt"
  say "the template wrote, which you keep off the server: put it here for the upgrade). Nothing was changed"
  exit 2
}

# The new file first, checked before anything stops. From 18 on the volume sits at /var/lib/postgresql.
new=$(mktemp "$file.XXXXXX")
trap 'rm -f "$new" "$new.18"' EXIT
sed -e "s/^\(    image: postgres:\)$from\$/\1$to/" -e "s/postgres${from}_data/postgres${to}_data/g" \
  -e "s/^\(    image: .*-backup}:pg\)$from\$/\1$to/" "$file" >"$new"
if [ "$to" -ge 18 ]; then
  # Through a second file, not sed -i: BSD sed (macOS) wants `-i ''`, which GNU sed takes for a script.
  sed "s|postgres${to}_data:/var/lib/postgresql/data\$|postgres${to}_data:/var/lib/postgresql|" "$new" >"$new.18"
  cat "$new.18" >"$new"
fi
if ! grep -q "^    image: postgres:$to\$" "$new" || ! docker compose -f "$new" config -q; then
  say "could not rewrite $file for PostgreSQL $to: nothing was changed"
  exit 1
fi
# A volume left by an earlier attempt would hold another cluster (other passwords): start from none.
volume={{ cookiecutter.project_slug }}-live_postgres${to}_data
if docker volume inspect "$volume" >/dev/null 2>&1; then
  say "the volume $volume exists already (an earlier attempt?): if it holds nothing you need,"
  say "docker volume rm $volume, and run this again. Nothing was changed"
  exit 1
fi
docker image inspect "postgres:$to" >/dev/null 2>&1 || docker pull "postgres:$to" ||
  { say "no image postgres:$to: nothing was changed"; exit 1; }
# The backup image of the new major (pg_dump must match the server): PostgreSQL's image with age, built here
# from this checkout's Dockerfile when no registry has it.
backup_image="${BACKUP_IMAGE:-{{ cookiecutter.project_slug }}-backup}:pg$to"
docker image inspect "$backup_image" >/dev/null 2>&1 || docker pull -q "$backup_image" >/dev/null 2>&1 ||
  docker build -q --target backup --build-arg "POSTGRES_VERSION=$to" -t "$backup_image" . >/dev/null ||
  { say "no image $backup_image, and building it failed: nothing was changed"; exit 1; }

say "stopping everything but the database, then a last backup with PostgreSQL $from"
live up -d --wait db
others=$(live config --services | grep -vx db | tr '\n' ' ')
# shellcheck disable=SC2086 # one word per service
live stop $others
live run --rm --no-deps -T backup now || { say "the backup failed: nothing was changed"; live up -d --wait; exit 1; }
live stop db

cp "$file" "$file.pg$from"
mv "$new" "$file"
rollback() {
  say "FAILED: $*. Back to PostgreSQL $from ($file restored; its volume was never touched)"
  mv "$file.pg$from" "$file"  # first: under set -e, a failing step below must not leave the new major named
  live down || true
  docker volume rm "$volume" >/dev/null || say "could not remove the volume $volume: docker volume rm it"
  live up -d --wait
  exit 1
}
live up -d --wait db || rollback "PostgreSQL $to did not start"
live run --rm --no-deps -T backup restore-db latest <"$identity" || rollback "the restore into PostgreSQL $to failed"
live up -d --wait || rollback "the stack did not come up on PostgreSQL $to"
rm -f "$file.pg$from"
say "done: PostgreSQL $to serves the data. $file now names postgres:$to: commit it (and move compose.yaml, CI to $to too)."
say "The old data stays in the volume {{ cookiecutter.project_slug }}-live_postgres${from}_data: docker volume rm it once you no longer need it."
