"""gunicorn settings for the live stack (gunicorn reads this file from the working directory).

Each value can be changed through the environment, e.g. WEB_CONCURRENCY=4.
"""

import os

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
# Only nginx, on the private network, talks to gunicorn, and it sets X-Forwarded-For and X-Forwarded-Proto
# on every request itself (believing a client's only from the edge or TRUSTED_PROXIES).
forwarded_allow_ips = "*"


def when_ready(server):
    from django.conf import settings

    if settings.DEBUG:
        banner = "!" * 72
        server.log.warning(
            "%s\nDEBUG is on in gunicorn: tracebacks and settings are shown to every visitor.\n"
            "Set DEBUG=0 in .envs/prod.env before this site faces the internet.\n%s",
            banner,
            banner,
        )
