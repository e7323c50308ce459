"""gunicorn settings for the live stack (gunicorn reads this file from the working directory).

Each value can be changed through the environment, e.g. WEB_CONCURRENCY=4.
"""

import ipaddress
import os
import socket
import time
from typing import Any

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Workers: WEB_CONCURRENCY, else two per CPU the container may use, plus one.
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * len(os.sched_getaffinity(0)) + 1)
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# Load the app once in the master: a settings error stops the server at once with its message,
# and workers share the loaded code's memory.
preload_app = True
# Heartbeat files in memory: a slow disk must never make a healthy worker look hung.
worker_tmp_dir = "/dev/shm"  # nosec B108: a tmpfs of its own per container, not a shared /tmp
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# On SIGTERM (docker stop) in-flight requests get this long to finish; keep the compose
# stop_grace_period longer than this.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# A request line as long as nginx passes on (its 8 KB header buffers; gunicorn's most): nginx refuses a longer one
# with its own 414 (JSON for an API), where gunicorn's default of 4094 bytes answered the lines in between itself,
# with an HTML page.
limit_request_line = 8190
# Recycle workers now and then, so a slow leak never grows without bound.
max_requests = 2000
max_requests_jitter = 200
# No control socket (gunicornc): signals manage the server in a container, and the socket's thread in
# the master made the first proxied requests hang in our end-to-end tests.
control_socket_disable = True
accesslog = "-"
# The visitor's address first: X-Forwarded-For as nginx sets it (the edge's view of the connection), not
# nginx's own address, which is the peer gunicorn sees.
access_log_format = '%({x-forwarded-for}i)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# X-Forwarded-* and Forwarded are believed only from the peers in APP_TRUSTED_PROXIES (addresses, CIDR ranges or
# names, separated by commas; by default loopback only): nginx in compose.prod.yaml (a name: its address changes
# with each container), the Ingress controller's pods in Kubernetes (its pod network). From anyone
# else, pre_request below removes them before gunicorn or Django reads them, and sets X-Forwarded-For to the
# peer, so Django sees plain HTTP from the real address and the access log names it.
TRUSTED = [entry.strip() for entry in os.environ.get("APP_TRUSTED_PROXIES", "127.0.0.1,::1").split(",")]
TRUSTED = [entry for entry in TRUSTED if entry]


def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


TRUSTED_NETWORKS = [network for network in map(_network, TRUSTED) if network]
TRUSTED_NAMES = [entry for entry in TRUSTED if not _network(entry)]
# gunicorn's own check (the scheme it reports to the app) takes addresses only; the names count in pre_request.
forwarded_allow_ips = ",".join(map(str, TRUSTED_NETWORKS))
FORWARDED = ("X-FORWARDED-", "FORWARDED", "X-REAL-IP")
_named: dict[str, Any] = {"addresses": frozenset(), "at": -1e9}


def _named_addresses(refresh: bool) -> frozenset[str]:
    """The addresses TRUSTED_NAMES resolve to, looked up again after 10 s, or at once when refresh is true (a
    peer not among them sent forwarded headers: a new nginx, say, during a release)."""
    if TRUSTED_NAMES and (refresh or time.monotonic() - _named["at"] > 10):
        found: set[str] = set()
        for name in TRUSTED_NAMES:
            try:
                found.update(str(info[4][0]) for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP))
            except OSError:
                pass  # not running right now: trusted again once it resolves
        _named.update(addresses=frozenset(found), at=time.monotonic())
    addresses: frozenset[str] = _named["addresses"]
    return addresses


def _trusted(peer: object) -> bool:
    if not isinstance(peer, tuple):  # a Unix socket: only this host's processes
        return True
    address = ipaddress.ip_address(peer[0])
    if any(address in network for network in TRUSTED_NETWORKS):
        return True
    return peer[0] in _named_addresses(False) or peer[0] in _named_addresses(True)


# gunicorn's objects (it publishes no types).
def pre_request(worker: Any, req: Any) -> None:
    if any(name.startswith(FORWARDED) for name, _ in req.headers) and not _trusted(req.peer_addr):
        req.headers = [(name, value) for name, value in req.headers if not name.startswith(FORWARDED)]
        req.headers.append(("X-FORWARDED-FOR", req.peer_addr[0]))


def when_ready(server: Any) -> None:
    from django.conf import settings

    if settings.DEBUG:
        banner = "!" * 72
        server.log.warning(
            "%s\nDEBUG is on in gunicorn: tracebacks and settings are shown to every visitor.\n"
            "Set DEBUG=0 in .envs/prod.env before this site faces the internet.\n%s",
            banner,
            banner,
        )
