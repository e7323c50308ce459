#!/bin/sh
# Releases an image tag on the live host without downtime (README, "Releasing without downtime"):
#   sh release.sh TAG          migrate, start TAG's containers beside the running ones, wait until they are
#                              healthy, move the traffic, then stop the old ones (they finish what they serve)
#   sh release.sh --rollback   the same with the tag that ran before the last release (kept in .release)
#   sh release.sh --deploy TAG migrate, then (re)start the whole stack at TAG in place (make deploy): a short
#                              outage, but it also applies changed settings and switches BEHIND_PROXY modes
#   sh release.sh --images TAG only check that every image of the stack at TAG is here or can be pulled
# `make release TAG=...`, `make rollback` and `make deploy` call it. Plain Docker Compose on one host. Each way
# a tag goes live is recorded in .release, so make rollback always goes back to the tag that ran before.
set -eu

export COMPOSE_FILE="${COMPOSE_FILE:-compose.prod.yaml}"
STATE=.release
# How long new containers get to become healthy.
WAIT=${RELEASE_TIMEOUT:-180}
# nginx looks the app's name up again every 10 s (nginx/run.sh): new containers must have been in
# Docker's DNS that long before the old ones stop, or nginx would know no address that still answers.
DNS_TTL=12
# Overlapped: started beside the old containers, which then drain. nginx too, unless it publishes a
# port itself (two containers cannot bind one host port): then it is replaced in place. Stopped in this
# order: the traffic's first.
ROLLING="app nginx worker"

me=release
say() { echo "$me: $*"; }
fail() {
    echo "$me: $*" >&2
    exit 1
}
now() { date +%s; }
ids() { docker compose ps -q "$1"; }
# A container's name (the last column of `docker ps`); whether it passes a filter, e.g. health=healthy.
container_name() { docker ps -a --filter "id=$1" | awk 'NR == 2 { print $NF }'; }
has() { [ -n "$(docker ps -q --filter "id=$1" --filter "$2")" ]; }

# Every image of the stack at $TAG, here or pulled; else each missing one named, and nothing changed.
check_images() {
    missing=
    # A project whose compose files Compose refuses (a missing env file...) says so here, not later.
    images=$(docker compose config --images) || fail "docker compose cannot read the live stack's files (above)." \
        "Nothing was changed."
    for image in $(printf '%s\n' "$images" | sort -u); do
        docker image inspect "$image" >/dev/null 2>&1 || docker pull -q "$image" >/dev/null 2>&1 ||
            missing="$missing $image"
    done
    # shellcheck disable=SC2086 # one image per word
    set -- $missing
    [ $# -lt 2 ] || fail "no images $(echo "$*" | sed 's/ /, /g') here, and none to pull: build them" \
        "(make build-live TAG=$TAG) or push them, or give a tag that has them (TAG=...). Nothing was changed."
    [ $# -lt 1 ] || fail "no image $1 here, and none to pull: build it (make build-live TAG=$TAG) or push it," \
        "or give a tag that has it (TAG=...). Nothing was changed."
}

# The edge cannot get a certificate for a placeholder: said before anything starts (edge mode only).
warn_placeholders() {
    docker compose config --services | grep -qx edge && [ -f .envs/edge.env ] || return 0
    domains=$(sed -n 's/^DOMAINS=//p' .envs/edge.env | tail -n 1 | tr ',' ' ')
    email=$(sed -n 's/^ACME_EMAIL=//p' .envs/edge.env | tail -n 1)
    public=''
    placeholders=''
    for domain in $domains; do
        case $domain in
        # Caddy certifies these itself, with its own CA (README, "Trying the live stack on your machine").
        localhost | *.localhost | *.local | *.internal | *.home.arpa | *:*) continue ;;
        *[!0-9.]*) public="$public $domain" ;;
        *) continue ;; # an IPv4 address: Caddy's own CA too
        esac
        # Reserved for examples (RFC 2606, RFC 6761): no public CA issues a certificate for them.
        case .$domain in
        *.example.com | *.example.net | *.example | *.test | *.invalid | *.example.org)
            placeholders="$placeholders $domain"
            ;;
        esac
    done
    warned=
    if [ -n "$placeholders" ]; then
        say "WARNING: DOMAINS in .envs/edge.env is a placeholder (${placeholders# }): no CA issues a certificate for" \
            "it and the site will not answer over HTTPS. Put your domain there and in ALLOWED_HOSTS and" \
            "CSRF_TRUSTED_ORIGINS (.envs/prod.env); to try the stack on this machine, DOMAINS=localhost." >&2
        warned=1
    fi
    case .${email#*@} in
    *.example.com | *.example.net | *.example.org)
        if [ -n "$public" ]; then
            say "WARNING: ACME_EMAIL in .envs/edge.env is a placeholder ($email): Let's Encrypt refuses it, and the" \
                "edge gets no certificate. Put a real address there (the CA's expiry notices go to it)." >&2
            warned=1
        fi
        ;;
    esac
    [ -z "$warned" ] || say "starting anyway; the edge's log says whether it got a certificate, and why not:" \
        "docker compose -f compose.prod.yaml logs edge" >&2
}

# Only the chosen mode's services: compose.behind-proxy.yaml gives the edge a profile, and a service left out by
# a profile is no orphan to `up --remove-orphans`: the edge of the other mode would stay on ports 80 and 443.
remove_other_modes() {
    others=$(docker compose --profile '*' config --services | grep -vxF "$(docker compose config --services)" || true)
    # shellcheck disable=SC2086 # one service per word
    [ -z "$others" ] || [ -z "$(docker compose --profile '*' ps -aq $others)" ] || {
        say "removing$(echo "$others" | sed 's/^/ /' | tr -d '\n'): not part of the stack in this mode (BEHIND_PROXY)"
        # shellcheck disable=SC2086 # one service per word
        docker compose --profile '*' rm -s -f $others >/dev/null
    }
}

# The tag that goes live now, and the one it replaces (running, or else the last one recorded), for make
# rollback. The same tag again keeps the record as it is.
record() {
    previous=${current:-$(sed -n 's/^TAG=//p' "$STATE" 2>/dev/null || true)}
    [ "$previous" != "$TAG" ] || {
        previous=
        return 0
    }
    printf 'TAG=%s\nPREVIOUS_TAG=%s\n' "$TAG" "$previous" >"$STATE"
}

started=$(now)
tag=${1:-}
mode=release
case $tag in
--deploy | --images)
    mode=${tag#--}
    me=deploy
    [ "$mode" = deploy ] || me=live
    tag=${2:-}
    [ -n "$tag" ] || fail "which tag? Usage: sh release.sh $1 TAG. Nothing was changed."
    ;;
esac
if [ "$tag" = --rollback ]; then
    [ -f "$STATE" ] || fail "no release is recorded in $STATE yet: make rollback undoes a make release or a make deploy."
    tag=$(sed -n 's/^PREVIOUS_TAG=//p' "$STATE")
    [ -n "$tag" ] || fail "$STATE names no previous tag: release the one you want with make release TAG=..."
    say "rolling back to $tag"
fi
[ -n "$tag" ] || fail "which tag? Usage: make release TAG=<tag> (a tag make build-live gave the images). Nothing was changed."
export TAG="$tag"

check_images
[ "$mode" != images ] || exit 0
# One release or deploy at a time: a second one would take the first one's new containers for old ones. mkdir
# is atomic everywhere (flock is not on every host); the lock goes with this script, however it ends.
LOCK=.release.lock
mkdir "$LOCK" 2>/dev/null || fail "another make release, rollback or deploy is running here (since" \
    "$(cat "$LOCK/since" 2>/dev/null || echo '?')): wait until it has finished. If none is (one was killed)," \
    "remove $LOCK and try again. Nothing was changed."
trap 'rm -rf "$LOCK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
date -u +%Y-%m-%dT%H:%M:%SZ >"$LOCK/since"
warn_placeholders

current=
app=$(ids app | head -n 1)
if [ -n "$app" ]; then
    # The tag it was started with: compose.prod.yaml gives it as APP_VERSION.
    current=$(docker inspect "$app" | sed -n 's/.*"APP_VERSION=\([^"]*\)".*/\1/p')
fi
if [ "$mode" = deploy ]; then
    say "migrating the database with $TAG, then (re)starting the stack at $TAG${current:+ (now: $current)}"
    docker compose run --rm app python manage.py migrate --noinput ||
        fail "the migrations of $TAG failed: nothing else was changed."
    remove_other_modes
    # Recorded first: should a service not become healthy, make rollback brings back what ran before.
    record
    docker compose up -d --wait --remove-orphans || {
        docker compose ps -a >&2
        fail "a service is not healthy at $TAG: see docker compose logs SERVICE.${previous:+ make rollback brings back $previous.}"
    }
    say "$TAG is running, every service healthy"
    # Healthy is not certified: the edge asks the CA in the background.
    if docker compose config --services | grep -qx edge; then
        say "the edge gets its certificates on its own; its log says when, or why not: docker compose -f compose.prod.yaml logs edge"
    fi
    exit 0
fi
if [ "$current" = "$TAG" ]; then
    say "$TAG is already running: nothing to do."
    exit 0
fi

say "migrating the database with $TAG (expand/contract: the running ${current:-nothing} must keep working)"
docker compose run --rm app python manage.py migrate --noinput ||
    fail "the migrations of $TAG failed: nothing else was changed, ${current:-nothing} keeps serving."

rolling=
scales=
inplace=
moved=
if [ -n "$current" ]; then
    for service in $ROLLING; do
        [ -n "$(ids "$service")" ] || continue
        if [ "$service" = nginx ] && docker compose port nginx 8080 | grep -q ':[1-9]'; then
            inplace=nginx
        else
            rolling="$rolling $service"
        fi
    done
fi

if [ -n "$rolling" ]; then
    old=$(for service in $rolling; do ids "$service"; done)
    # The containers this release started so far (all of them once every service is scaled).
    started_here() { for service in $rolling; do ids "$service"; done | grep -vxF "$old" || true; }
    abandon() {
        [ -z "$1" ] || docker logs --tail 30 "$1" 2>&1 | sed 's/^/    /' >&2
        say "$2: its last log lines are above. Removing the new containers; $current keeps serving." >&2
        # Stopped, not killed: a healthy one among them may already be serving requests.
        new=$(started_here)
        # shellcheck disable=SC2086 # one id per word
        [ -z "$new" ] || { docker stop $new >/dev/null && docker rm $new >/dev/null; }
        fail "$TAG was not released; $current keeps serving. (The migrations of $TAG stay applied.)"
    }
    for service in $rolling; do
        # $((...)): BSD wc (macOS) pads the count with blanks, which would split the --scale pair below.
        count=$(($(ids "$service" | wc -l)))
        scales="$scales --scale $service=$count"
        say "starting $service ($TAG) beside the $count running"
        # --no-recreate keeps the old containers as they are; the new ones get the new tag.
        docker compose up -d --no-deps --no-recreate --scale "$service=$((count * 2))" "$service" ||
            abandon "" "starting $service ($TAG) failed"
    done
    new=$(started_here)
    placed=$(now)

    for id in $new; do
        name=$(container_name "$id")
        until has "$id" health=healthy; do
            has "$id" status=running || abandon "$id" "$name ($TAG) crashed"
            [ "$(now)" -lt $((placed + WAIT)) ] || abandon "$id" "$name ($TAG) was not healthy after ${WAIT}s"
            sleep 1
        done
    done
    settle=$((placed + DNS_TTL - $(now)))
    [ "$settle" -le 0 ] || sleep "$settle"

    say "$TAG is healthy; stopping the $current containers (each finishes its requests first)"
    for service in $rolling; do
        stale=$(ids "$service" | grep -xF "$old" || true)
        # shellcheck disable=SC2086 # one id per word
        docker stop $stale >/dev/null && docker rm $stale >/dev/null
        say "stopped the old $service, $(($(now) - started))s after the command started"
        [ "$service" = worker ] || moved=$(now)
    done
    say "all traffic on $TAG, $((moved - started))s after the command started"
fi
if [ -n "$inplace" ]; then
    say "replacing nginx in place: it publishes a port itself, so connections drop for a few seconds" \
        "(put the HTTPS edge in front of it to avoid that)"
fi
# From here on, the new tag serves: make rollback must bring back the one it replaced.
record
remove_other_modes
# Everything else at the new tag (nginx when it publishes its port; a singleton like a scheduler is
# replaced, never doubled); what was rolled above is already up to date and stays as it is, as many as before.
# shellcheck disable=SC2086 # --scale service=count pairs
if ! docker compose up -d --wait --remove-orphans $scales; then
    docker compose ps -a >&2
    fail "$TAG serves the traffic, but a service above is not healthy: see docker compose logs SERVICE.${current:+ make rollback brings back $current.}"
fi
say "$TAG released in $(($(now) - started))s"
[ -z "$current" ] || say "make rollback brings back $current"
