#!/bin/sh
# Start nginx with the DNS server the container runtime configured (Docker, Podman, Kubernetes).
# nginx resolves the app's name per request through it, so it follows the app to a new address
# after a restart instead of proxying to the old one until nginx itself restarts.
# Only the first nameserver: the runtime lists its own first, and nginx would send every other
# query to the next one, which does not know the service names.
set -eu
resolver=$(awk '/^nameserver/ { ip = $2; if (ip ~ /:/) ip = "[" ip "]"; print ip; exit }' /etc/resolv.conf)
echo "resolver ${resolver:-127.0.0.11} valid=10s ipv6=off;" > /tmp/resolver.conf

# TRUSTED_PROXIES (addresses, CIDR ranges or host names, separated by spaces or commas): the only peers
# whose X-Forwarded-For and X-Forwarded-Proto nginx believes (nginx.conf). The word "gateway" is this
# container's default gateway: the Docker host, whose processes (a proxy on the same host) reach a published
# port from that address. trusted PREFIX writes them into PREFIX.conf and PREFIX.geo, names looked up now; it
# fails on a name that does not resolve.
trusted() {
  : > "$1.conf"
  : > "$1.geo"
  for proxy in $(echo "${TRUSTED_PROXIES:-}" | tr ',' ' '); do
    case $proxy in
      *:*) addresses=$proxy ;;  # IPv6
      gateway)
        # The default route's gateway, in /proc/net/route as little-endian hex (0100A8C0: 192.168.0.1).
        addresses=$(awk '$2 == "00000000" && $3 != "00000000" { print $3; exit }' /proc/net/route |
          sed 's/../0x& /g' | { read -r d c b a && printf '%d.%d.%d.%d' "$a" "$b" "$c" "$d"; }) || true
        if [ -z "$addresses" ]; then
          echo "nginx-run: TRUSTED_PROXIES names gateway, but this container has no default route" >&2
          return 1
        fi
        ;;
      *[!0-9./]*)
        addresses=$(getent hosts "$proxy" | awk '{ print $1 }') || true
        if [ -z "$addresses" ]; then
          echo "nginx-run: TRUSTED_PROXIES names $proxy, which does not resolve (is it running?)" >&2
          return 1
        fi
        ;;
      *) addresses=$proxy ;;
    esac
    for address in $addresses; do
      echo "set_real_ip_from $address;" >> "$1.conf"
      echo "$address 1;" >> "$1.geo"
    done
  done
}
trusted /tmp/trusted-proxies || exit 1

# A named proxy (the live stack's edge) that Docker alone restarts after a crash may come back on another
# address: look the names up again every 10 s, and reload nginx (gracefully) when an address changed.
# While a name does not resolve (the proxy is restarting), the last addresses stay.
follow_names() {
  while sleep 10; do
    trusted /tmp/trusted-proxies.new 2>/dev/null || continue
    if ! cmp -s /tmp/trusted-proxies.new.conf /tmp/trusted-proxies.conf; then
      mv /tmp/trusted-proxies.new.geo /tmp/trusted-proxies.geo
      mv /tmp/trusted-proxies.new.conf /tmp/trusted-proxies.conf
      echo "nginx-run: a name in TRUSTED_PROXIES moved; reloading with" \
        "$(sed 's/^set_real_ip_from //; s/;$//' /tmp/trusted-proxies.conf | tr '\n' ' ')" >&2
      nginx -s reload
    fi
  done
}
case ${TRUSTED_PROXIES:-} in
  *[!0-9./:,\ ]*) follow_names & ;;
esac
exec nginx -g "daemon off;"
