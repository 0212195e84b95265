"""Settings shared by every environment, read from the environment via django-environ."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(environ.Env().str("QUANTPLAN_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.exists():
    environ.Env.read_env(str(env_file))

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
ALLOWED_HOSTS: list[str] = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"]
)
CSRF_TRUSTED_ORIGINS: list[str] = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "planner",
    "quantjobs",
    "frontend",
]

MIDDLEWARE = [
    # First: an oversized body is refused before anything reads it.
    "config.middleware.RequestBodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "config.middleware.PrivateCacheMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {
    "default": env.db(
        "DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'quantplan.sqlite3'}"
    ),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web and worker processes write the same file: wait for the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)
    DATABASES["default"]["OPTIONS"].setdefault(
        "init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: a locked-out account or address fails even with the right password.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("QUANTPLAN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(
    minutes=env.int("QUANTPLAN_LOGIN_LOCKOUT_MINUTES", default=15)
)
# Either the account or the address, each on its own, is locked after the limit.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "frontend.lockout.lockout_response"
AXES_VERBOSE = False
# Proxies in front that append to X-Forwarded-For (production: 1). With none, only the
# socket's address counts: a client could write any X-Forwarded-For it likes. Lockouts
# and rate limits find the address the same way (config.throttles.client_ip).
QUANTPLAN_PROXY_COUNT = env.int("QUANTPLAN_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "config.throttles.client_ip"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "plan"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
MEDIA_ROOT = Path(env.str("QUANTPLAN_MEDIA_ROOT", default=str(VAR_DIR / "media")))

# Request bodies. Every route refuses a declared body over QUANTPLAN_MAX_REQUEST_BYTES
# before reading it (config.middleware); the routes that take files allow their file
# limit plus 1 MiB of form. Models and evaluation files stream to disk; the rest of a
# body is held in memory up to DATA_UPLOAD_MAX_MEMORY_SIZE.
QUANTPLAN_MAX_REQUEST_BYTES = env.int(
    "QUANTPLAN_MAX_REQUEST_BYTES", default=2 * 1024 * 1024
)
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int(
    "QUANTPLAN_MAX_JSON_BYTES", default=2 * 1024 * 1024
)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
DATA_UPLOAD_MAX_NUMBER_FILES = 10
QUANTPLAN_MAX_UPLOAD_BYTES = env.int("QUANTPLAN_MAX_UPLOAD_BYTES", default=2 * 1024**3)
# An uploaded archive unpacks to at most the user's remaining storage quota and this
# hard cap, at most QUANTPLAN_UPLOAD_MAX_RATIO times its packed size, into at most
# QUANTPLAN_UPLOAD_MAX_FILES files; anything more is refused before it is unpacked.
QUANTPLAN_MAX_UNPACKED_BYTES = env.int(
    "QUANTPLAN_MAX_UNPACKED_BYTES", default=4 * 1024**3
)
QUANTPLAN_UPLOAD_MAX_RATIO = env.int("QUANTPLAN_UPLOAD_MAX_RATIO", default=100)
QUANTPLAN_UPLOAD_MAX_FILES = env.int("QUANTPLAN_UPLOAD_MAX_FILES", default=1000)
# An upload no worker has checked after this long is refused (frees its quota).
QUANTPLAN_UPLOAD_CHECK_MAX_WAIT_S = env.int(
    "QUANTPLAN_UPLOAD_CHECK_MAX_WAIT_S", default=3600
)
# A resumable browser upload (tus) that received nothing for this long is abandoned:
# the reaper removes its partial file and its row.
QUANTPLAN_TUS_ABANDONED_AFTER_S = env.int(
    "QUANTPLAN_TUS_ABANDONED_AFTER_S", default=24 * 3600
)
# One limit for evaluation files on the page and the API alike (the parser's own).
QUANTPLAN_MAX_EVAL_TEXT_BYTES = env.int(
    "QUANTPLAN_MAX_EVAL_TEXT_BYTES", default=8 * 1024**2
)

# Per-user quotas.
QUANTPLAN_MAX_ACTIVE_JOBS = env.int("QUANTPLAN_MAX_ACTIVE_JOBS", default=5)
QUANTPLAN_MAX_STORAGE_BYTES = env.int(
    "QUANTPLAN_MAX_STORAGE_BYTES", default=20 * 1024**3
)
QUANTPLAN_MAX_SAVED_PLANS = env.int("QUANTPLAN_MAX_SAVED_PLANS", default=200)
QUANTPLAN_MAX_UPLOADS = env.int("QUANTPLAN_MAX_UPLOADS", default=20)

# Rate limits (DRF's "N/second|minute|hour|day"), shared by the API and the pages:
# a scope counts the same requests whichever way they come.
QUANTPLAN_RATES = {
    "signup": env.str("QUANTPLAN_RATE_SIGNUP", default="10/hour"),
    "token-create": env.str("QUANTPLAN_RATE_TOKEN_CREATE", default="20/hour"),
    "job-create": env.str("QUANTPLAN_RATE_JOB_CREATE", default="60/hour"),
}
# Throttle counters and login lockouts must be shared by every web process: Redis in
# production (config/settings/production.py); one process's memory elsewhere.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "quantplan",
    }
}

# Where jobs write: a private temporary directory per job, then artifacts move atomically
# into ARTIFACT_ROOT (same filesystem, so os.replace is atomic).
QUANTPLAN_ARTIFACT_ROOT = Path(
    env.str("QUANTPLAN_ARTIFACT_ROOT", default=str(MEDIA_ROOT / "artifacts"))
)
QUANTPLAN_WORK_ROOT = Path(
    env.str("QUANTPLAN_WORK_ROOT", default=str(MEDIA_ROOT / "work"))
)
QUANTPLAN_UPLOAD_ROOT = Path(
    env.str("QUANTPLAN_UPLOAD_ROOT", default=str(MEDIA_ROOT / "uploads"))
)
# A job's CPU threads (llama.cpp, torch): by default every core this worker may use.
QUANTPLAN_WORKER_THREADS = env.int(
    "QUANTPLAN_WORKER_THREADS", default=len(os.sched_getaffinity(0))
)
# Folders on the workers from which jobs may read models by path (none outside them).
QUANTPLAN_LOCAL_MODEL_DIRS: list[str] = env.list(
    "QUANTPLAN_LOCAL_MODEL_DIRS", default=[str(VAR_DIR / "models")]
)
# A worker whose job shows no heartbeat for this long is presumed dead.
QUANTPLAN_HEARTBEAT_STALE_S = env.int("QUANTPLAN_HEARTBEAT_STALE_S", default=60)
# A queued job whose message is not in the broker this long after it was sent is
# sent again, at most QUANTPLAN_MAX_SENDS times in all; then it fails with the reason.
QUANTPLAN_RESEND_AFTER_S = env.int("QUANTPLAN_RESEND_AFTER_S", default=120)
QUANTPLAN_MAX_SENDS = env.int("QUANTPLAN_MAX_SENDS", default=3)
# Resource limits of a job's child process, sized from the job's projection with
# headroom; the floors apply to small models and to jobs without a projection.
QUANTPLAN_JOB_MEMORY_FLOOR_BYTES = env.int(
    "QUANTPLAN_JOB_MEMORY_FLOOR_BYTES", default=4 * 1024**3
)
QUANTPLAN_JOB_LIMIT_HEADROOM = env.float("QUANTPLAN_JOB_LIMIT_HEADROOM", default=2.0)
QUANTPLAN_JOB_CPU_FLOOR_S = env.int("QUANTPLAN_JOB_CPU_FLOOR_S", default=3600)
QUANTPLAN_JOB_CPU_S_PER_GB = env.int("QUANTPLAN_JOB_CPU_S_PER_GB", default=3600)

# --- Celery -------------------------------------------------------------------------
# Without REDIS_URL every process of this instance (web, workers, manage.py
# commands) uses the embedded broker `manage.py up` starts: up writes its URL to
# var/run/broker-url; before that, its default port.
QUANTPLAN_EMBEDDED_REDIS_PORT = env.int("QUANTPLAN_EMBEDDED_REDIS_PORT", default=6390)
BROKER_URL_FILE = VAR_DIR / "run" / "broker-url"


def _embedded_broker_url() -> str:
    try:
        written = BROKER_URL_FILE.read_text().strip()
    except OSError:
        written = ""
    if written.startswith(("redis://", "rediss://", "unix://")):
        return written
    return f"redis://127.0.0.1:{QUANTPLAN_EMBEDDED_REDIS_PORT}/0"


REDIS_URL = env.str("REDIS_URL", default="") or _embedded_broker_url()
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = (
    False  # redelivery is decided by the Job row's attempts
)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("QUANTPLAN_JOB_HARD_LIMIT_S", default=4 * 3600)
CELERY_TASK_SOFT_TIME_LIMIT = env.int(
    "QUANTPLAN_JOB_SOFT_LIMIT_S", default=4 * 3600 - 300
)
# The visibility timeout must exceed the hard limit, or Redis redelivers a running job.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int(
        "QUANTPLAN_VISIBILITY_TIMEOUT_S", default=CELERY_TASK_TIME_LIMIT + 3600
    ),
    # How often a worker looks for messages whose consumer vanished (seconds).
    "unacked_restore_interval": env.int(
        "QUANTPLAN_UNACKED_RESTORE_INTERVAL_S", default=10
    ),
    "unacked_restore_throttle": env.int(
        "QUANTPLAN_UNACKED_RESTORE_THROTTLE", default=10
    ),
    "socket_timeout": 5,
    "socket_connect_timeout": 5,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    "socket_timeout": 5,
    "socket_connect_timeout": 5,
}
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_TASK_QUEUES_NAMES = ("cpu", "gpu")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_TASK_SEND_SENT_EVENT = False

# --- REST framework -----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "frontend.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.LimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.BoundedLimitOffsetPagination",
    # Views name their scope (throttle_scope); only their writes are counted.
    "DEFAULT_THROTTLE_CLASSES": ["config.throttles.WriteScopeThrottle"],
    "DEFAULT_THROTTLE_RATES": QUANTPLAN_RATES,
    "NUM_PROXIES": QUANTPLAN_PROXY_COUNT,
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Quantplan API",
    "DESCRIPTION": "Plan, quantize and benchmark self-hosted LLMs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Two fields are called "method" (a job's quantization method, a fine-tuning
    # method): name their enums so the schema does not invent "Method963Enum".
    "ENUM_NAME_OVERRIDES": {
        "JobMethodEnum": "quantjobs.models.Job.Method",
        "FinetuneMethodEnum": "planner.engine.finetune.METHODS",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.schema.add_error_responses",  # 400/401/404 by rule
    ],
}

# Content-Security-Policy (django-csp): scripts and styles only from this site's
# static files; nothing inline, no other origin, no framing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {
        "handlers": ["console"],
        "level": env.str("DJANGO_LOG_LEVEL", default="INFO"),
    },
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Every sign-in at INFO is noise; lockouts are logged as warnings.
        "axes": {"level": "WARNING"},
    },
}
