#!/bin/sh
# What backup.sh and offsite.sh share (each sources it; compose.prod.yaml mounts it beside them):
# the log line, the status file, and what a backup's name and time stamp are. ME names the script,
# STATUS its status file, DIR the backups folder (each script sets them first).
# shellcheck disable=SC2154 # ME, STATUS and DIR come from the script that sources this

log() { printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$ME" "$*"; }

die() {
  log "$*" >&2
  exit 1
}

# The healthcheck runs as another process: the status file (no secret in it) is readable by all.
status() { (umask 022 && echo "$*" >"$STATUS"); }

# A backup's time stamp, and the newest one a backup may carry: a few minutes of clock skew, never
# the future (a file named db-29991231T000000Z.dump.age must not become "latest").
STAMP_RE='[0-9]\{8\}T[0-9]\{6\}Z'
not_after() { date -u -d '+5 minutes' +%Y%m%dT%H%M%SZ; }
# The same as a shell pattern: one whole word, so nothing else (a newline, a path) passes.
is_stamp() {
  case $1 in
    [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z) return 0 ;;
    *) return 1 ;;
  esac
}

# stamp: the time stamp a backup's NAME gives (db-<time>.dump.age, db-<time>.dump or <time>),
# unchecked.
stamp_of() {
  case $1 in
    db-*.dump.age) stamp=${1#db-} stamp=${stamp%.dump.age} ;;
    db-*.dump) stamp=${1#db-} stamp=${stamp%.dump} ;;
    *) stamp=$1 ;;
  esac
}

# The timestamps of the backups in DIR, newest first (an encrypted database dump is what makes a
# backup); those dated in the future are left out.
stamps() {
  find "$DIR" -maxdepth 1 -name 'db-*.dump.age' |
    sed -n "s|.*/db-\($STAMP_RE\)\.dump\.age\$|\1|p" | sort -r |
    awk -v limit="$(not_after)" '$0 <= limit'
}
