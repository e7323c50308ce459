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
# whose X-Forwarded-For and X-Forwarded-Proto nginx believes (nginx.conf). Names are resolved now, once.
: > /tmp/trusted-proxies.conf
: > /tmp/trusted-proxies.geo
for proxy in $(echo "${TRUSTED_PROXIES:-}" | tr ',' ' '); do
  case $proxy in
    *:*) addresses=$proxy ;;  # IPv6
    *[!0-9./]*)
      addresses=$(getent hosts "$proxy" | awk '{ print $1 }') || true
      if [ -z "$addresses" ]; then
        echo "nginx-run: TRUSTED_PROXIES names $proxy, which does not resolve (is it running?)" >&2
        exit 1
      fi
      ;;
    *) addresses=$proxy ;;
  esac
  for address in $addresses; do
    echo "set_real_ip_from $address;" >> /tmp/trusted-proxies.conf
    echo "$address 1;" >> /tmp/trusted-proxies.geo
  done
done
exec nginx -g "daemon off;"
