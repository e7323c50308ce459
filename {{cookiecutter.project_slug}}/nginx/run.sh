#!/bin/sh
# Start nginx with the DNS server the container runtime configured (Docker, Podman, Kubernetes).
# nginx resolves the app's name per request through it, so it follows the app to a new address
# after a restart instead of proxying to the old one until nginx itself restarts.
# Only the first nameserver: the runtime lists its own first, and nginx would send every other
# query to the next one, which does not know the service names.
set -eu
resolver=$(awk '/^nameserver/ { ip = $2; if (ip ~ /:/) ip = "[" ip "]"; print ip; exit }' /etc/resolv.conf)
echo "resolver ${resolver:-127.0.0.11} valid=10s ipv6=off;" > /tmp/resolver.conf
exec nginx -g "daemon off;"
