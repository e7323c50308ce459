#!/bin/sh
# Off-site copies of the backups, run by compose.prod.yaml's offsite service (the Dockerfile's
# offsite target: the AWS CLI) as root, the owner of /backups, without any capability. The copies
# are the encrypted, sealed files backup.sh wrote: the bucket never holds a readable dump, and a
# file planted there is refused by a restore (backup.sh verify). Settings and keys come from
# .envs/offsite.env; with S3_BUCKET unset, off-site copies are off. Nothing is ever deleted
# off-site: a host that lost its backups must not empty the bucket too. Old copies expire by the
# bucket's lifecycle rules (README).
#
#   offsite.sh loop        copy each new backup soon after backup.sh took it
#   offsite.sh push        copy the backups taken since the last copy, now; non-zero when it fails
#   offsite.sh list        the off-site backups, newest first
#   offsite.sh fetch NAME [offsite]  print the backup name for backup.sh: NAME when the backup NAME
#                          (db-<time>.dump.age, <time> or latest) is here; else, or always with
#                          "offsite", fetched/<its name> after copying it from off-site into
#                          /backups/fetched, apart from the backups here (which it never replaces)
#                          until backup.sh has checked its seal
#   offsite.sh health      the healthcheck: did the last copy succeed?
set -eu
umask 077

DIR=${BACKUP_DIR:-/backups}
# "ok <time of the newest backup copied>" or "failed <the same> <why>". backup.sh's healthcheck
# reads it.
STATUS=$DIR/.offsite-status
ME=offsite
# log, die, status, stamps, is_stamp, stamp_of, not_after, STAMP_RE
# shellcheck source=SCRIPTDIR/backup-common.sh
. "$(dirname "$0")/backup-common.sh"
SETTINGS=.envs/offsite.env
# The AWS CLI's own variables; an empty line in the env file means unset.
for name in S3_BUCKET S3_PREFIX AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN \
  AWS_DEFAULT_REGION AWS_REGION AWS_ENDPOINT_URL; do
  eval "[ -n \"\${$name:-}\" ] || unset $name"
done
# Give up on an unreachable endpoint after seconds, not minutes.
export AWS_RETRY_MODE="${AWS_RETRY_MODE:-standard}" AWS_MAX_ATTEMPTS="${AWS_MAX_ATTEMPTS:-3}"
TARGET="s3://${S3_BUCKET:-}/${S3_PREFIX:+${S3_PREFIX%/}/}"

# Nothing before the first copy (no status file yet).
copied() { sed -n 's/^\(ok\|failed\) \([0-9TZ]*\).*/\2/p' "$STATUS" 2>/dev/null || true; }

# The same alert line as a failed backup ("backup: FAILED"); the backup service turns unhealthy.
fail() {
  printf '%s backup: FAILED: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
  status "failed $(copied) $*"
}

# 0 when off-site copies are configured, 1 when they are off, 2 (and the failure logged) when the
# settings make no sense: S3 settings without a bucket.
configured() {
  if [ -n "${S3_BUCKET:-}" ]; then return 0; fi
  for setting in AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL S3_PREFIX \
    AWS_DEFAULT_REGION AWS_REGION; do
    if eval "[ -n \"\${$setting:-}\" ]"; then
      fail "off-site copies: $setting is set in $SETTINGS but S3_BUCKET is not: set S3_BUCKET to" \
        "the bucket's name (or empty the other S3 settings to turn off-site copies off). The" \
        "local backups are kept"
      return 2
    fi
  done
  return 1
}

# What to do about the AWS CLI's error (its output in $1).
advice() {
  case $1 in
    *InvalidAccessKeyId* | *SignatureDoesNotMatch* | *"locate credentials"* | *AccessDenied* | \
      *Forbidden* | *"(403)"*)
      echo "the storage refused the keys: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in" \
        "$SETTINGS (and that they may read and write $S3_BUCKET)"
      ;;
    *NoSuchBucket*)
      echo "there is no bucket $S3_BUCKET there: create it, or correct S3_BUCKET in $SETTINGS" ;;
    *"connect"* | *"Connect"* | *"resolve"* | *"Name or service"* | *"timed out"* | \
      *"Invalid endpoint"*)
      echo "could not reach ${AWS_ENDPOINT_URL:-AWS S3}: check AWS_ENDPOINT_URL and" \
        "AWS_DEFAULT_REGION in $SETTINGS, and that this host can reach it"
      ;;
    *) echo "see the AWS CLI's error above, and the settings in $SETTINGS" ;;
  esac
}

# aws ARGS...: the AWS CLI, its errors kept for advice(); stdout passes through (fetching writes
# files).
aws_() {
  if aws --cli-connect-timeout 10 "$@" 2>/tmp/aws.err; then return 0; fi
  cat /tmp/aws.err >&2
  return 1
}

# A backup's three files: its seal first and its database dump last, so that a db-<time>.dump.age,
# wherever it is, always has the others beside it.
files() { echo "seal-$1.txt{% if cookiecutter.media_storage == "local" %} media-$1.tar.gz.age{% endif %} db-$1.dump.age"; }

# Each backup taken since the last one copied (the newest alone the first time), oldest first.
push() {
  configured || {
    [ $? -eq 1 ] || return 1
    log "off-site copies are off (no S3_BUCKET in $SETTINGS): nothing to copy"
    rm -f "$STATUS"
    return 0
  }
  last=$(copied)
  todo=$(stamps | awk -v last="$last" 'last == "" ? NR == 1 : $0 > last' | sort)
  [ -n "$todo" ] || { log "nothing new to copy to $TARGET"; return 0; }
  for stamp in $todo; do
    for file in $(files "$stamp"); do
      if ! aws_ s3 cp --only-show-errors "$DIR/$file" "$TARGET$file"; then
        fail "off-site copy of $file to $TARGET: $(advice "$(cat /tmp/aws.err)")." \
          "The local backup is kept in $DIR"
        return 1
      fi
    done
    status "ok $stamp"
{%- if cookiecutter.media_storage == "local" %}
    log "copied db-$stamp.dump.age, media-$stamp.tar.gz.age and seal-$stamp.txt to $TARGET"
{%- else %}
    log "copied db-$stamp.dump.age and seal-$stamp.txt to $TARGET (media_storage=s3: no media archive)"
{%- endif %}
  done
}

loop() {
  configured || {
    # Off: nothing to report. Bad settings: unhealthy (the status says failed) until they are
    # corrected.
    [ $? -eq 2 ] || {
      rm -f "$STATUS"
      log "off-site copies are off: set S3_BUCKET and the keys in $SETTINGS to turn them on"
    }
    exec sleep infinity
  }
  log "copying each new backup in $DIR to $TARGET"
  while :; do
    newest=$(stamps | head -n 1)
    if [ -n "$newest" ] && [ "$newest" != "$(copied)" ]; then
      # After a failure, try again in five minutes.
      push || sleep "${OFFSITE_RETRY:-300}"
    fi
    sleep 10
  done
}

# The off-site backups, newest first: "db-<time>.dump.age<TAB><size> bytes", those dated in the
# future left out. `aws s3 ls` exits 1 with no error when nothing is there yet.
remote() {
  listing=$(aws_ s3 ls "$TARGET") || [ ! -s /tmp/aws.err ] || return 1
  printf '%s\n' "$listing" | awk -v limit="db-$(not_after).dump.age" \
    '$4 ~ /^db-[0-9]{8}T[0-9]{6}Z\.dump\.age$/ && $4 <= limit { printf "%s\t%s bytes\n", $4, $3 }' |
    sort -r
}

list() {
  configured || {
    [ $? -eq 1 ] || exit 1
    echo "off-site: off (set S3_BUCKET in $SETTINGS to copy each backup off the host)"
    return 0
  }
  echo "off-site, $TARGET:"
  remote || die "listing $TARGET failed: $(advice "$(cat /tmp/aws.err)")"
}

# Into a temporary name first: a failed download leaves nothing that looks like a backup.
fetch() {
  name=${1:-latest} from=${2:-}
  case $name in
    latest) stamp=$(stamps | head -n 1) ;;
    *) stamp_of "$name" ;;
  esac
  # Nothing but a backup's name goes further (into a path or a URL): one whole word of the stamp's
  # shape.
  [ "$name" = latest ] || is_stamp "$stamp" ||
    die "NAME=$name is not a backup's name (db-<time>.dump.age, <time> or latest; make backups" \
      "lists them). Nothing was changed"
  # FROM checked first: a mistyped FROM=offsite must not restore the copy here instead.
  case $from in
    '' | offsite) ;;
    *) die "FROM=$from: the only other place is FROM=offsite. Nothing was changed" ;;
  esac
  if [ "$from" != offsite ] && [ -n "$stamp" ] && [ -f "$DIR/db-$stamp.dump.age" ]; then
    echo "$name"
    return 0
  fi
  configured || {
    [ $? -eq 1 ] || die "Nothing was changed"
    [ "$from" != offsite ] || die "FROM=offsite, but off-site copies are off (no S3_BUCKET in" \
      "$SETTINGS). Nothing was changed"
    echo "$name" # backup.sh says what is missing
    return 0
  }
  if [ "$name" = latest ]; then
    stamp=$(remote) ||
      die "listing $TARGET failed: $(advice "$(cat /tmp/aws.err)"). Nothing was changed"
    stamp=$(printf '%s\n' "$stamp" | sed -n '1s/^db-\([0-9TZ]*\)\.dump\.age.*/\1/p')
    [ -n "$stamp" ] || die "no backup here nor in $TARGET yet. Nothing was changed"
  fi
  # Apart from the backups here: a copy from the bucket (which its keys could have replaced) is no
  # backup of this host's before backup.sh has checked its seal, and it never replaces one.
  fetched=$DIR/fetched
  rm -rf "$fetched"
  mkdir -m 700 "$fetched"
{%- if cookiecutter.media_storage == "local" %}
  log "fetching db-$stamp.dump.age, media-$stamp.tar.gz.age and seal-$stamp.txt from $TARGET into" \
    "$fetched" >&2
{%- else %}
  log "fetching db-$stamp.dump.age and seal-$stamp.txt from $TARGET into $fetched" >&2
{%- endif %}
  for file in $(files "$stamp"); do
    if ! aws_ s3 cp --only-show-errors "$TARGET$file" "$fetched/$file"; then
      rm -rf "$fetched"
      case $(cat /tmp/aws.err) in
        *"(404)"* | *NoSuchKey* | *"Not Found"*)
          die "no $file in $TARGET (make backups lists them). Nothing was changed"
          ;;
      esac
      die "fetching $file from $TARGET failed: $(advice "$(cat /tmp/aws.err)"). Nothing was changed"
    fi
  done
  echo "fetched/db-$stamp.dump.age"
}

case "${1:-}" in
  loop) loop ;;
  push) push ;;
  list) list ;;
  fetch) fetch "${2:-}" "${3:-}" ;;
  health) ! grep -q '^failed' "$STATUS" 2>/dev/null ;;
  *)
    echo "usage: offsite.sh loop|push|list|fetch NAME [offsite]|health" >&2
    exit 2
    ;;
esac
