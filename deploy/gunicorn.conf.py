"""Gunicorn settings for the Quantplan web container (``gunicorn -c deploy/gunicorn.conf.py``).

Threaded workers: pages and the API are I/O bound, and an artifact download
streams for minutes without blocking a whole process. Every value can be
overridden from the environment (``GUNICORN_*``), and gunicorn's own
``GUNICORN_CMD_ARGS`` still applies on top.
"""

from __future__ import annotations

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


bind = f"{os.environ.get('GUNICORN_HOST', '0.0.0.0')}:{_int('PORT', 8000)}"
# Two workers per core is plenty for threaded workers; cap it for small containers.
workers = _int("GUNICORN_WORKERS", min(2 * multiprocessing.cpu_count() + 1, 9))
worker_class = "gthread"
threads = _int("GUNICORN_THREADS", 4)
# gthread's timeout watches the worker's heartbeat, not one request, so a long
# download does not hit it; a worker stuck this long is restarted.
timeout = _int("GUNICORN_TIMEOUT", 120)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Recycle workers now and then so a slow leak never takes the site down.
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 200)
# The heartbeat file lives in memory: a read-only or slow root filesystem is fine.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# TLS ends at the proxy in front; trust its X-Forwarded-* headers only from it.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
proxy_allow_ips = forwarded_allow_ips
# Request heads: a line (method, path, query) up to 8 KiB, at most 100 header fields of
# at most 8 KiB each; anything larger is a 400 before Django sees it. Bodies are capped
# per route by config.middleware (and by the proxy in front, deploy/nginx.conf).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss "%(a)s"'


def post_worker_init(worker: object) -> None:
    """Warm each worker (views imported, catalogs read) before its first request."""
    from config.warmup import warm

    warm()
