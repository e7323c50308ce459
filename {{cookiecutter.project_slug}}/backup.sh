#!/bin/sh
# Backups of the live stack, run by compose.prod.yaml's backup service (postgres image: the same major's
# pg_dump). Each backup is a pair in /backups: db-<UTC time>.dump (pg_dump's custom format, compressed)
# and media-<UTC time>.tar.gz. Readable by their owner only.
#
#   backup.sh loop    take a backup whenever BACKUP_INTERVAL seconds have passed since the newest one
#   backup.sh now     take one backup now; exits non-zero when it fails
#   backup.sh list    the backups, newest first
#   backup.sh health  the healthcheck: did the last attempt succeed, and its off-site copy (offsite.sh)?
#   backup.sh verify NAME      read the whole backup NAME (db-<time>.dump, <time> or latest) without restoring
#   backup.sh restore-db NAME  restore its database into a new one, then swap it in place of the live one
#   backup.sh media-out NAME   write its media archive to stdout (the app's container unpacks it: its files)
set -eu
umask 077

DIR=${BACKUP_DIR:-/backups}
MEDIA=${MEDIA_DIR:-/srv/media}
INTERVAL=${BACKUP_INTERVAL:-86400}
KEEP_DAILY=${BACKUP_KEEP_DAILY:-7}
KEEP_WEEKLY=${BACKUP_KEEP_WEEKLY:-4}
STATUS=/tmp/backup.status
# libpq's variables, from the superuser's settings in db.env.
export PGHOST="${PGHOST:-db}" PGUSER="${PGUSER:-$POSTGRES_USER}" PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
export PGDATABASE="${PGDATABASE:-$POSTGRES_DB}"

# The healthcheck runs as root without capabilities: the status file (no secret in it) is readable by all.
status() { (umask 022 && echo "$*" >"$STATUS"); }

log() { printf '%s backup: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

# The timestamps of the backups, newest first (a database dump is what makes a backup).
stamps() {
  find "$DIR" -maxdepth 1 -name 'db-*.dump' | sed -n 's|.*/db-\([0-9]\{8\}T[0-9]\{6\}Z\)\.dump$|\1|p' | sort -r
}

# Keep the newest KEEP_DAILY backups, and the newest of each of the last KEEP_WEEKLY ISO weeks.
prune() {
  all=$(stamps)
  [ -n "$all" ] || return 0
  keep=$(
    printf '%s\n' "$all" | head -n "$KEEP_DAILY"
    printf '%s\n' "$all" | while read -r each; do
      printf '%s %s\n' "$(date -u -d "${each%%T*}" +%G%V)" "$each"
    done | awk '!seen[$1]++ { print $2 }' | head -n "$KEEP_WEEKLY"
  )
  for stamp in $all; do
    if ! printf '%s\n' "$keep" | grep -qx "$stamp"; then
      rm -f "$DIR/db-$stamp.dump" "$DIR/media-$stamp.tar.gz"
      log "removed db-$stamp.dump (retention: $KEEP_DAILY last, $KEEP_WEEKLY weekly)"
    fi
  done
}

# Written under temporary names and renamed when complete, so a failed attempt leaves no backup behind.
backup_now() {
  chmod 700 "$DIR"
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  started=$(date +%s)
  if ! pg_dump --format=custom --compress=6 --file="$DIR/.db-$stamp.dump.part"; then
    rm -f "$DIR/.db-$stamp.dump.part"
    fail "pg_dump of $PGDATABASE on $PGHOST failed"
    return 1
  fi
  if ! tar -czf "$DIR/.media-$stamp.tar.gz.part" -C "$MEDIA" .; then
    rm -f "$DIR/.db-$stamp.dump.part" "$DIR/.media-$stamp.tar.gz.part"
    fail "archiving $MEDIA failed"
    return 1
  fi
  mv "$DIR/.media-$stamp.tar.gz.part" "$DIR/media-$stamp.tar.gz"
  mv "$DIR/.db-$stamp.dump.part" "$DIR/db-$stamp.dump"
  log "OK db-$stamp.dump ($(stat -c %s "$DIR/db-$stamp.dump") bytes) and media-$stamp.tar.gz in $(($(date +%s) - started))s"
  status "ok $stamp"
  prune
}

# One line an operator can alert on ("backup: FAILED"), and the healthcheck turns unhealthy.
fail() {
  log "FAILED: $*" >&2
  status "failed $(date -u +%Y%m%dT%H%M%SZ) $*"
}

# Seconds since the newest backup was taken (its file's age), or -1 when there is none.
age() {
  newest=$(stamps | head -n 1)
  if [ -z "$newest" ]; then echo -1; else echo $(($(date +%s) - $(stat -c %Y "$DIR/db-$newest.dump"))); fi
}

loop() {
  chmod 700 "$DIR"
  log "every ${INTERVAL}s into $DIR, keeping the last $KEEP_DAILY and $KEEP_WEEKLY weekly"
  while :; do
    since=$(age)
    if [ "$since" -lt 0 ] || [ "$since" -ge "$INTERVAL" ]; then
      # After a failure, try again sooner than a whole interval (at most every 5 minutes).
      if backup_now; then wait=$INTERVAL; else wait=$((INTERVAL < 300 ? INTERVAL : 300)); fi
    else
      [ -f "$STATUS" ] || status "ok $(stamps | head -n 1)"
      wait=$((INTERVAL - since))
    fi
    sleep "$wait"
  done
}

die() {
  log "$*" >&2
  exit 1
}

# NAME (db-<time>.dump, media-<time>.tar.gz, <time>, or latest/empty) to the backup's time stamp.
resolve() {
  case "${1:-latest}" in
    latest) stamp=$(stamps | head -n 1) ;;
    db-*.dump) stamp=${1#db-} stamp=${stamp%.dump} ;;
    media-*.tar.gz) stamp=${1#media-} stamp=${stamp%.tar.gz} ;;
    *) stamp=$1 ;;
  esac
  [ -n "$stamp" ] || die "no backup in $DIR yet: take one with make backup"
  [ -f "$DIR/db-$stamp.dump" ] || die "no backup db-$stamp.dump in $DIR (make backups lists them): nothing was changed"
  [ -f "$DIR/media-$stamp.tar.gz" ] || die "media-$stamp.tar.gz is missing beside db-$stamp.dump: nothing was changed"
}

# Reads every byte (pg_restore to /dev/null, gzip -t), so a truncated or corrupt file is found before
# anything is stopped or replaced.
verify() {
  resolve "$1"
  pg_restore --file=/dev/null "$DIR/db-$stamp.dump" ||
    die "db-$stamp.dump is not a complete pg_dump archive (corrupt or truncated): nothing was changed"
  tar -tzf "$DIR/media-$stamp.tar.gz" >/dev/null ||
    die "media-$stamp.tar.gz is not a complete archive (corrupt or truncated): nothing was changed"
  log "db-$stamp.dump and media-$stamp.tar.gz are complete"
}

# Into a database of its own first: the live one is replaced only once the whole restore succeeded.
restore_db() {
  verify "$1"
  new="${PGDATABASE}_restoring" old="${PGDATABASE}_replaced"
  psql -q -v ON_ERROR_STOP=1 -d postgres --set new="$new" --set owner="$APP_DB_USER" <<'SQL' || die "could not create a database to restore into: nothing was changed"
DROP DATABASE IF EXISTS :"new";
CREATE DATABASE :"new" OWNER :"owner";
SQL
  if ! pg_restore --exit-on-error --dbname="$new" "$DIR/db-$stamp.dump"; then
    psql -q -d postgres --set new="$new" <<'SQL'
DROP DATABASE IF EXISTS :"new";
SQL
    die "restoring db-$stamp.dump failed: the live database was not changed"
  fi
  psql -q -v ON_ERROR_STOP=1 -d postgres --set live="$PGDATABASE" --set new="$new" --set old="$old" <<'SQL' || die "could not swap the restored database in (it is kept as $new)"
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :'live' AND pid <> pg_backend_pid();
DROP DATABASE IF EXISTS :"old";
ALTER DATABASE :"live" RENAME TO :"old";
ALTER DATABASE :"new" RENAME TO :"live";
DROP DATABASE :"old";
SQL
  log "restored db-$stamp.dump into $PGDATABASE"
}

case "${1:-}" in
  loop) loop ;;
  now) backup_now ;;
  list) stamps | while read -r each; do
      printf 'db-%s.dump\t%s bytes\n' "$each" "$(stat -c %s "$DIR/db-$each.dump")"
    done ;;
  # Unhealthy too while the off-site copy of a backup fails (offsite.sh writes that status).
  health) grep -q '^ok ' "$STATUS" && ! grep -q '^failed' "$DIR/.offsite-status" 2>/dev/null ;;
  verify) verify "${2:-}" ;;
  restore-db) restore_db "${2:-}" ;;
  media-out)
    verify "${2:-}" >&2
    cat "$DIR/media-$stamp.tar.gz"
    ;;
  *)
    echo "usage: backup.sh loop|now|list|health|verify NAME|restore-db NAME|media-out NAME" >&2
    exit 2
    ;;
esac
