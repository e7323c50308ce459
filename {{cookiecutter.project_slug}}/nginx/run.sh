#!/bin/sh
# Start nginx with the DNS resolver the container runtime configured (Docker, Podman, Kubernetes).
# nginx resolves the app's name per request through it, so it follows the app to a new address
# after a restart instead of proxying to the old one until nginx itself restarts.
set -eu
resolvers=$(awk '/^nameserver/ { ip = $2; if (ip ~ /:/) ip = "[" ip "]"; printf "%s ", ip }' /etc/resolv.conf)
echo "resolver ${resolvers:-127.0.0.11} valid=10s ipv6=off;" > /tmp/resolver.conf
exec nginx -g "daemon off;"
