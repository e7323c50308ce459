#!/bin/sh
# Backups of the live stack, run by compose.prod.yaml's backup service (the Dockerfile's backup
# target: the database's own image, so pg_dump matches its major, with age). Each backup is three
# files in /backups:
#   db-<UTC time>.dump.age      pg_dump's custom format, encrypted to BACKUP_RECIPIENT (age)
#   media-<UTC time>.tar.gz.age the media, encrypted the same way
#   seal-<UTC time>.txt         their SHA-256 sums and an HMAC of them with BACKUP_AUTH_KEY
# Only the private key (backup-identity.txt, kept off the server) decrypts them, and a restore takes only a
# backup whose seal this stack made: a file planted in /backups or in the bucket is refused before anything
# stops. Owned by root (the service runs as root without any capability), readable by root only.
#
#   backup.sh loop    take a backup whenever BACKUP_INTERVAL seconds have passed since the newest one
#   backup.sh now     take one backup now; exits non-zero when it fails
#   backup.sh list    the backups, newest first
#   backup.sh health  the healthcheck: did the last attempt succeed, and its off-site copy (offsite.sh)?
#   backup.sh resolve NAME     the backup NAME stands for (latest: the newest now), for the steps after it
# These read the private key on standard input (make restore gives it backup-identity.txt):
#   backup.sh verify NAME      check NAME's seal and decrypt and read all of it, without restoring
#   backup.sh restore-db NAME  restore its database into a new one as the app's role, then swap it in
#   backup.sh media-out NAME   write its media archive to stdout (the app's container unpacks it: its files)
# NAME: db-<time>.dump.age (or db-<time>.dump), <time>, or latest (the newest not dated in the future);
# fetched/db-<time>.dump.age for one offsite.sh fetched into /backups/fetched (never among the backups here
# until it passed: deleted when its seal is refused).
set -eu
umask 077

DIR=${BACKUP_DIR:-/backups}
{%- if cookiecutter.media_storage == "local" %}
MEDIA=${MEDIA_DIR:-/srv/media}
{%- else %}
# Media in object storage (media_storage=s3): the uploads are in the bucket, which keeps them by its own versioning
# and replication (README, "Media in object storage"). A backup here is the database alone: its dump and its seal.
MEDIA_NOTE="media: not in this backup: media_storage=s3 keeps them in the bucket (its versioning/replication)"
{%- endif %}
INTERVAL=${BACKUP_INTERVAL:-86400}
KEEP_DAILY=${BACKUP_KEEP_DAILY:-7}
KEEP_WEEKLY=${BACKUP_KEEP_WEEKLY:-4}
STATUS=/tmp/backup.status
ME=backup
# log, die, status, stamps, is_stamp, stamp_of, not_after, STAMP_RE
# shellcheck source=SCRIPTDIR/backup-common.sh
. "$(dirname "$0")/backup-common.sh"
IDENTITY=/tmp/identity
SRC=$DIR # where the backup being verified or restored is: $DIR, or $DIR/fetched (resolve)
# libpq's variables, from the superuser's settings in db.env: pg_dump, and the databases' creation
# and swap. The restore itself connects as the app's role (restore_db).
export PGHOST="${PGHOST:-db}" PGUSER="${PGUSER:-$POSTGRES_USER}" PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
export PGDATABASE="${PGDATABASE:-$POSTGRES_DB}"

# Refuses a folder that is not root's: an older version left it to the postgres image's uid, which
# may be another user's on the host.
own_folder() {
  owner=$(stat -c %u "$DIR")
  [ "$owner" = 0 ] || die "$DIR (BACKUP_PATH on the host) belongs to uid $owner, not root: on the host, run" \
    "sudo chown -R root:root <BACKUP_PATH> (./backups by default), then start the backup service again"
  chmod 700 "$DIR"
}

need() {
  for name in "$@"; do
    eval "[ -n \"\${$name:-}\" ]" ||
      die "$name is not set: it belongs in .envs/backup.env (the template wrote it; README, \"Backups and restore\")"
  done
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
      rm -f "$DIR/db-$stamp.dump.age" "$DIR/media-$stamp.tar.gz.age" "$DIR/seal-$stamp.txt"
      log "removed db-$stamp.dump.age (retention: $KEEP_DAILY last, $KEEP_WEEKLY weekly)"
    fi
  done
}

# HMAC-SHA256 of standard input with BACKUP_AUTH_KEY (from the environment: never on a command
# line).
hmac() { perl -MDigest::SHA=hmac_sha256_hex -e 'local $/; print hmac_sha256_hex(<STDIN>, $ENV{BACKUP_AUTH_KEY})'; }

# The sums a seal records for STAMP, read from the files in FOLDER named PREFIX<file>SUFFIX (the
# finished names, or the .part ones).
sums() {
{%- if cookiecutter.media_storage == "local" %}
  for file in "db-$1.dump.age" "media-$1.tar.gz.age"; do
{%- else %}
  # shellcheck disable=SC2066 # one file: the dump (media_storage=s3: no media archive)
  for file in "db-$1.dump.age"; do
{%- endif %}
    printf '%s  %s\n' "$(sha256sum <"$2/$3$file$4" | cut -d ' ' -f 1)" "$file"
  done
}

# Encrypted as they are written, under temporary names, and renamed once complete and sealed (the
# database dump last: it is what makes a backup), so a failed attempt leaves no backup behind.
backup_now() {
  own_folder
  need BACKUP_RECIPIENT BACKUP_AUTH_KEY
  # What an attempt killed on the way (a stop, the OOM killer, a reboot) left behind.
  find "$DIR" -maxdepth 1 -name '.*.part' -mmin +60 -delete
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  started=$(date +%s)
  rm -f /tmp/failed
  { pg_dump --format=custom --compress=6 || touch /tmp/failed; } |
    age --encrypt --recipient "$BACKUP_RECIPIENT" --output "$DIR/.db-$stamp.dump.age.part" || touch /tmp/failed
  if [ -e /tmp/failed ]; then
    rm -f "$DIR/.db-$stamp.dump.age.part"
    fail "pg_dump of $PGDATABASE on $PGHOST failed"
    return 1
  fi
{%- if cookiecutter.media_storage == "local" %}
  { tar -czf - -C "$MEDIA" . || touch /tmp/failed; } |
    age --encrypt --recipient "$BACKUP_RECIPIENT" --output "$DIR/.media-$stamp.tar.gz.age.part" || touch /tmp/failed
  if [ -e /tmp/failed ]; then
    rm -f "$DIR/.db-$stamp.dump.age.part" "$DIR/.media-$stamp.tar.gz.age.part"
    fail "archiving $MEDIA failed"
    return 1
  fi
{%- endif %}
  sums "$stamp" "$DIR" . .part >"$DIR/.seal-$stamp.txt.part"
  printf 'hmac-sha256 %s\n' "$(hmac <"$DIR/.seal-$stamp.txt.part")" >>"$DIR/.seal-$stamp.txt.part"
  mv "$DIR/.seal-$stamp.txt.part" "$DIR/seal-$stamp.txt"
{%- if cookiecutter.media_storage == "local" %}
  mv "$DIR/.media-$stamp.tar.gz.age.part" "$DIR/media-$stamp.tar.gz.age"
  mv "$DIR/.db-$stamp.dump.age.part" "$DIR/db-$stamp.dump.age"
  log "OK db-$stamp.dump.age ($(stat -c %s "$DIR/db-$stamp.dump.age") bytes) and media-$stamp.tar.gz.age," \
    "encrypted and sealed, in $(($(date +%s) - started))s"
{%- else %}
  mv "$DIR/.db-$stamp.dump.age.part" "$DIR/db-$stamp.dump.age"
  log "OK db-$stamp.dump.age ($(stat -c %s "$DIR/db-$stamp.dump.age") bytes), encrypted and sealed, in" \
    "$(($(date +%s) - started))s; $MEDIA_NOTE"
{%- endif %}
  status "ok $stamp"
  prune
}

# One line an operator can alert on ("backup: FAILED"), and the healthcheck turns unhealthy.
fail() {
  log "FAILED: $*" >&2
  status "failed $(date -u +%Y%m%dT%H%M%SZ) $*"
}

# Seconds since the newest backup was taken (its file's age), or -1 when there is none.
age_of_newest() {
  newest=$(stamps | head -n 1)
  if [ -z "$newest" ]; then echo -1; else echo $(($(date +%s) - $(stat -c %Y "$DIR/db-$newest.dump.age"))); fi
}

loop() {
  own_folder
  need BACKUP_RECIPIENT BACKUP_AUTH_KEY
  log "every ${INTERVAL}s into $DIR, keeping the last $KEEP_DAILY and $KEEP_WEEKLY weekly"
  while :; do
    since=$(age_of_newest)
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

# NAME to the backup's time stamp (and SRC, its folder). Anything but a backup's name is refused
# before it is used anywhere.
resolve() {
  name=${1:-latest} SRC=$DIR
  case $name in fetched/*) name=${name#fetched/} SRC=$DIR/fetched ;; esac
  case $name in
    latest)
      stamp=$(stamps | head -n 1)
      [ -n "$stamp" ] || die "no backup in $DIR yet: take one with make backup. Nothing was changed"
      return 0
      ;;
    *) stamp_of "$name" ;;
  esac
  is_stamp "$stamp" ||
    die "NAME=$1 is not a backup's name (db-<time>.dump.age, <time> or latest; make backups lists them):" \
      "nothing was changed"
  [ -f "$SRC/db-$stamp.dump.age" ] ||
    die "no backup db-$stamp.dump.age in $SRC (make backups lists them): nothing was changed"
{%- if cookiecutter.media_storage == "local" %}
  [ -f "$SRC/media-$stamp.tar.gz.age" ] ||
    die "media-$stamp.tar.gz.age is missing beside db-$stamp.dump.age: nothing was changed"
{%- endif %}
}

# A refused backup that offsite.sh fetched is deleted: it never joins the backups here.
refuse() {
  [ "$SRC" = "$DIR" ] || rm -f "$SRC/db-$stamp.dump.age" "$SRC/media-$stamp.tar.gz.age" "$SRC/seal-$stamp.txt"
  die "$@"
}

# The seal: the files are the ones this stack sealed, with this stack's BACKUP_AUTH_KEY. Says which
# of the three ways a backup fails it, before anything is decrypted.
check_seal() {
  need BACKUP_AUTH_KEY
  seal="$SRC/seal-$stamp.txt"
  [ -f "$seal" ] || refuse "db-$stamp.dump.age has no seal (seal-$stamp.txt): this stack did not make it" \
    "(planted, or taken before backups were sealed: README). Refused: nothing was changed"
  recorded=$(sed -n 's/^hmac-sha256 \([0-9a-f]\{64\}\)$/\1/p' "$seal")
  [ "$(grep -v '^hmac-sha256 ' "$seal" | hmac)" = "$recorded" ] ||
    refuse "db-$stamp.dump.age's seal was not made with this stack's BACKUP_AUTH_KEY (planted, or sealed" \
      "elsewhere). Refused: nothing was changed"
  [ "$(sums "$stamp" "$SRC" "" "")" = "$(grep -v '^hmac-sha256 ' "$seal")" ] ||
    refuse "db-$stamp.dump.age or media-$stamp.tar.gz.age is not the file this stack sealed (altered, truncated" \
      "or swapped since). Refused: nothing was changed"
}

# The private key, from standard input, into this container's private /tmp (memory) for its few
# commands.
read_identity() {
  cat >"$IDENTITY"
  grep -q '^AGE-SECRET-KEY-1' "$IDENTITY" ||
    die "no private key on standard input: make restore gives it the file BACKUP_IDENTITY names" \
      "(backup-identity.txt, which the template wrote and you keep off the server). Nothing was changed"
}

# age -d of FILE to stdout; its failure is told apart from the reader's.
decrypt() {
  age --decrypt --identity "$IDENTITY" "$SRC/$1" 2>/tmp/age.err || {
    touch /tmp/failed
    case $(cat /tmp/age.err) in
      *"no identity matched"*) log "the private key given does not decrypt $1: it is not the key pair of" \
        ".envs/backup.env's BACKUP_RECIPIENT (use the backup-identity.txt baked with this project)" >&2 ;;
      *) cat /tmp/age.err >&2 ;;
    esac
  }
}

# Reads every byte (pg_restore to /dev/null, tar -t), so a corrupt file or a wrong key is found
# before anything is stopped or replaced.
verify() {
  resolve "$1"
  check_seal
  read_identity
  rm -f /tmp/failed
  decrypt "db-$stamp.dump.age" | pg_restore --file=/dev/null 2>/dev/null || touch /tmp/failed
  [ ! -e /tmp/failed ] ||
    die "db-$stamp.dump.age could not be decrypted and read as a pg_dump archive: nothing was changed"
{%- if cookiecutter.media_storage == "local" %}
  decrypt "media-$stamp.tar.gz.age" | tar -tzf - >/dev/null || touch /tmp/failed
  [ ! -e /tmp/failed ] ||
    die "media-$stamp.tar.gz.age could not be decrypted and read as an archive: nothing was changed"
  log "db-$stamp.dump.age and media-$stamp.tar.gz.age are sealed by this stack and complete"
{%- else %}
  log "db-$stamp.dump.age is sealed by this stack and complete; $MEDIA_NOTE"
{%- endif %}
}

# Into a database of its own first, restored by the app's role (no superuser: a dump's functions,
# triggers and constraints run with that role's rights, never COPY ... TO PROGRAM); the live one is
# replaced only once the whole restore succeeded.
restore_db() {
  resolve "$1"
  check_seal
  read_identity
  need APP_DB_USER APP_DB_PASSWORD
  new="${PGDATABASE}_restoring" old="${PGDATABASE}_replaced"
  export PGOPTIONS="-c client_min_messages=warning"  # no NOTICE for each DROP ... IF EXISTS
  psql -q -v ON_ERROR_STOP=1 -d postgres --set new="$new" --set owner="$APP_DB_USER" <<'SQL' ||
DROP DATABASE IF EXISTS :"new";
CREATE DATABASE :"new" OWNER :"owner";
SQL
    die "could not create a database to restore into: nothing was changed"
  rm -f /tmp/failed
  decrypt "db-$stamp.dump.age" |
    PGUSER="$APP_DB_USER" PGPASSWORD="$APP_DB_PASSWORD" \
      pg_restore --no-owner --no-privileges --exit-on-error --dbname="$new" || touch /tmp/failed
  if [ -e /tmp/failed ]; then
    psql -q -d postgres --set new="$new" <<'SQL'
DROP DATABASE IF EXISTS :"new";
SQL
    die "restoring db-$stamp.dump.age failed: the live database was not changed"
  fi
  psql -q -v ON_ERROR_STOP=1 -d postgres --set live="$PGDATABASE" --set new="$new" --set old="$old" \
    >/dev/null <<'SQL' || die "could not swap the restored database in (it is kept as $new)"
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :'live' AND pid <> pg_backend_pid();
DROP DATABASE IF EXISTS :"old";
ALTER DATABASE :"live" RENAME TO :"old";
ALTER DATABASE :"new" RENAME TO :"live";
DROP DATABASE :"old";
SQL
  log "restored db-$stamp.dump.age into $PGDATABASE"
}

list() {
  stamps | while read -r each; do
    printf 'db-%s.dump.age\t%s bytes\n' "$each" "$(stat -c %s "$DIR/db-$each.dump.age")"
  done
  limit=$(not_after)
  find "$DIR" -maxdepth 1 -name 'db-*.dump.age' | sed -n "s|.*/\(db-\($STAMP_RE\)\.dump\.age\)\$|\2 \1|p" |
    awk -v limit="$limit" '$1 > limit { print "ignored: " $2 " (dated in the future: not a backup this stack took)" }'
  old=$(find "$DIR" -maxdepth 1 -name 'db-*.dump' | wc -l)
  [ "$old" -eq 0 ] || echo "ignored: $old unencrypted db-*.dump from before backups were encrypted (README)"
}

case "${1:-}" in
  loop) loop ;;
  now) backup_now ;;
  list) list ;;
  # Unhealthy too while the off-site copy of a backup fails (offsite.sh writes that status).
  health) grep -q '^ok ' "$STATUS" && ! grep -q '^failed' "$DIR/.offsite-status" 2>/dev/null ;;
  resolve)
    resolve "${2:-}"
    if [ "$SRC" = "$DIR" ]; then echo "db-$stamp.dump.age"; else echo "fetched/db-$stamp.dump.age"; fi
    ;;
  verify) verify "${2:-}" ;;
  restore-db) restore_db "${2:-}" ;;
{%- if cookiecutter.media_storage == "local" %}
  media-out)
    resolve "${2:-}" >&2
    check_seal >&2
    read_identity >&2
    rm -f /tmp/failed
    decrypt "media-$stamp.tar.gz.age"
    [ ! -e /tmp/failed ] || exit 1
    ;;
{%- else %}
  media-out) die "$MEDIA_NOTE: there is no media archive to write (README, \"Media in object storage\")" ;;
{%- endif %}
  *)
    echo "usage: backup.sh loop|now|list|health|resolve NAME|verify NAME|restore-db NAME|media-out NAME" >&2
    exit 2
    ;;
esac
