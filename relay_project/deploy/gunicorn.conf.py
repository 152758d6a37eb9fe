"""gunicorn settings for Relay's web process: `gunicorn -c relay_project/deploy/gunicorn.conf.py`.

Every value can be overridden from the environment (GUNICORN_* below) or the command line.
The web process only serves pages and the API; jobs run in `relay_worker` processes.
"""

import multiprocessing
import os

wsgi_app = "relay_project.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# Requests are short database reads and writes: 2 x cores + 1 sync workers.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 30))
# Recycle workers now and then, jittered so they don't all restart together.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 2000))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", 200))
# The proxy in front terminates TLS; trust its X-Forwarded-* headers only from these addresses
# (the audit log records the client address gunicorn derives from them).
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
