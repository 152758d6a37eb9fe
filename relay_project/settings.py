"""Relay settings, read from the environment.

Every value has a safe development default so that `make run` works on a fresh machine.
Production sets at least SECRET_KEY, DEBUG=0, ALLOWED_HOSTS and DATABASE_URL.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
import django
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false)")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)
# The development key is only accepted while DEBUG is on: a production deployment that forgot
# SECRET_KEY must not start with a key that is public in this repository.
_DEV_SECRET_KEY = "relay-development-key-not-for-production"
SECRET_KEY = os.environ.get("SECRET_KEY") or (_DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- Production (DEBUG=0) ---------------------------------------------------------------------
# Relay serves HTTPS behind a TLS-terminating proxy or load balancer. With DEBUG off, cookies
# are HTTPS-only, plain HTTP is redirected and browsers are told (HSTS) to use HTTPS from then
# on; `manage.py check --deploy --fail-level WARNING` is clean (make test checks it).
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Load balancers and Prometheus probe over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    # Trust X-Forwarded-Proto only when a proxy that sets it (and strips the client's) is in
    # front; otherwise a client could claim HTTPS.
    if env_bool("RELAY_BEHIND_PROXY", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here (no CDN)
    "queues",
    "scheduler",
    "dashboard",
    "dashboard.metrics",  # the running totals behind /metrics
]
if env_bool("RELAY_EXAMPLES", True):
    # Example tasks shown by `make run`; production deployments set RELAY_EXAMPLES=0.
    INSTALLED_APPS.append("relay_project.examples")
if django.VERSION < (6, 0):
    # Django 5.2: the tasks framework is the django-tasks backport (its app runs the backend's
    # system checks). Django 6 has it built in as django.tasks.
    INSTALLED_APPS.append("django_tasks")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "dashboard.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "relay_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "relay_project.wsgi.application"
ASGI_APPLICATION = "relay_project.asgi.application"

# --- Database -------------------------------------------------------------------------------
# DATABASE_URL unset: a SQLite file in the project folder (one machine, everything works).
# DATABASE_URL=postgres://user@host:5432/name: PostgreSQL through psycopg 3 (many machines).
SQLITE_PATH = Path(os.environ.get("RELAY_SQLITE_PATH", BASE_DIR / "relay.sqlite3"))
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()


def _database_from_url(url: str) -> dict:
    if not url:
        config = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(SQLITE_PATH)}
    else:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["OPTIONS"] = {
            # Wait for the write lock instead of failing with "database is locked".
            "timeout": 30,
            # BEGIN IMMEDIATE: take the write lock at the start of every transaction, so a
            # read-then-write transaction never fails half-way on a lock upgrade.
            "transaction_mode": "IMMEDIATE",
            # WAL lets readers (web pages) run while a worker writes.
            "init_command": (
                "PRAGMA journal_mode=WAL;"
                "PRAGMA synchronous=NORMAL;"
                "PRAGMA foreign_keys=ON;"
                "PRAGMA busy_timeout=30000"
            ),
        }
        config["TEST"] = {
            # Worker processes started by tests must see the test database: use a file.
            "NAME": os.environ.get("RELAY_TEST_SQLITE_PATH", str(BASE_DIR / "relay-test.sqlite3"))
        }
    elif config["ENGINE"] in {
        "django.db.backends.postgresql",
        "django.db.backends.postgresql_psycopg2",
    }:
        config["ENGINE"] = "django.db.backends.postgresql"
        config.setdefault("OPTIONS", {})
        config["OPTIONS"].setdefault("application_name", "relay")
    else:
        raise ImproperlyConfigured(
            f"DATABASE_URL names {config['ENGINE']}; Relay supports SQLite and PostgreSQL"
        )
    return config


DATABASES = {"default": _database_from_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
# In development gunicorn serves static files straight from the apps (no collectstatic).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "login"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "relay": {
            "()": "relay_project.logfmt.KeyValueFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "relay"},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("RELAY_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
    },
}

# --- REST API (dashboard.api) ---------------------------------------------------------------
# Deny by default: every view needs a user with a Relay role (dashboard.api.permissions).
# Clients authenticate with `Authorization: Bearer <token>` (tokens are created in the admin)
# or the dashboard's session (CSRF enforced). Requests per user and minute are limited; an
# anonymous call is refused (401) before anything else, so it needs no rate of its own.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "dashboard.api.auth.BearerTokenAuthentication",
        "dashboard.api.auth.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["dashboard.api.permissions.HasRelayRole"],
    "DEFAULT_THROTTLE_CLASSES": ["dashboard.api.throttling.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": os.environ.get("RELAY_API_USER_RATE", "1200/minute")},
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "dashboard.api.schema.RelayAutoSchema",
    "EXCEPTION_HANDLER": "dashboard.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Relay API",
    "DESCRIPTION": "Jobs, dead letters, workflow runs, schedules and workers. Authenticate "
                   "with `Authorization: Bearer <token>` (create tokens in the admin).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["dashboard.api.permissions.HasRelayRole"],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "PREPROCESSING_HOOKS": ["dashboard.api.schema.only_api_v1"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "JobStateEnum": "queues.models.JobState",
        "RunStateEnum": "scheduler.models.RunState",
        "StepStateEnum": "scheduler.models.StepState",
        "OutcomeEnum": "queues.models.Outcome",
    },
}

# SQLite ignores the INCLUDE columns of the covering index on job state (a PostgreSQL
# optimisation, queues/migrations/0004); the index itself still serves SQLite. Django checks
# it per database (always on Django 6, with --database on 5.2) and says to silence it.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

# --- Relay ----------------------------------------------------------------------------------
# Relay's own options. Every key and its default is documented in queues/conf.py and README.md;
# set only what you change, e.g. RELAY = {"DEFAULT_MAX_ATTEMPTS": 5}.
RELAY: dict = {}
# The bearer token Prometheus sends to /metrics (README: "Metrics"); unset: only this machine
# may scrape.
if os.environ.get("RELAY_METRICS_TOKEN"):
    RELAY["METRICS_TOKEN"] = os.environ["RELAY_METRICS_TOKEN"]

# --- Django's tasks framework ---------------------------------------------------------------
# Functions decorated with Django's @task run on Relay workers (README: "Django Tasks backend").
# QUEUES: [] accepts any Relay queue name. OPTIONS (each optional, Relay's defaults otherwise):
# MAX_ATTEMPTS (None retries forever), BACKOFF {base, factor, cap, jitter}, TIMEOUT, ACK_TIMEOUT.
TASKS = {
    "default": {
        "BACKEND": "queues.django_tasks_backend.RelayTaskBackend",
        "QUEUES": [],
        "OPTIONS": {},
    },
}
