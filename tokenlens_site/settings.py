"""TokenLens settings: every value comes from the environment (see README, "Settings").

With no environment at all the app runs on its embedded default: SQLite under var/, the
in-process channel layer, and tasks executed in a worker thread of the web process.
TOKENLENS_REDIS_URL switches to channels-redis and a real Celery broker (a separate worker);
TOKENLENS_DATABASE_URL switches the database (PostgreSQL via psycopg 3).
"""

from __future__ import annotations

import os
import secrets
from importlib.util import find_spec
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    """true/false (1/0, yes/no, on/off); unset or empty (`NAME=` in an .env file) is `default`."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def secret_key_from_file(path: Path) -> str:
    """The secret key kept in `path`, made once (random, readable by its owner only) when the
    file does not exist yet, so sessions and reset links outlive a restart without a key in the
    environment. Two processes starting together get the same key."""
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = _create_secret_key(path)
    except OSError as exc:
        raise ImproperlyConfigured(f"Cannot read the secret key file {path}: {exc}") from exc
    if len(key) < 50:
        raise ImproperlyConfigured(
            f"{path} holds no usable secret key (under 50 characters): delete it to have a new "
            "one made, or set SECRET_KEY"
        )
    return key


def _create_secret_key(path: Path) -> str:
    key = secrets.token_urlsafe(64)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w") as draft_file:
            draft_file.write(key + "\n")
        try:
            os.link(draft, path)  # atomic, and never over a key another process just made
        except FileExistsError:
            return path.read_text().strip()
        finally:
            draft.unlink()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"SECRET_KEY is not set and the secret key file {path} cannot be made: {exc}"
        ) from exc
    return key


DEBUG = env_bool("DEBUG", True)
TOKENLENS_SECRET_KEY_FILE = Path(
    env_str("TOKENLENS_SECRET_KEY_FILE", "") or BASE_DIR / "var" / "secret_key"
)
SECRET_KEY = env_str("SECRET_KEY", "") or secret_key_from_file(TOKENLENS_SECRET_KEY_FILE)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# HTTPS. Off by default, so `make run` serves plain http://127.0.0.1:8000; a deployment behind
# TLS sets TOKENLENS_HTTPS=true (secure cookies, redirect to https, a year of HSTS), and each
# setting below can still be set on its own.
TOKENLENS_HTTPS = env_bool("TOKENLENS_HTTPS", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", TOKENLENS_HTTPS)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", TOKENLENS_HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", TOKENLENS_HTTPS)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if TOKENLENS_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", TOKENLENS_HTTPS)
# Consent to browsers' built-in HSTS list, which is hard to leave: only ever on purpose.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# The header a TLS-terminating proxy sets to "https" (e.g. X-Forwarded-Proto); trusted only when
# named, since a client could send it too.
_PROXY_SSL_HEADER = env_str("SECURE_PROXY_SSL_HEADER", "").strip()
if _PROXY_SSL_HEADER:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _PROXY_SSL_HEADER.upper().replace("-", "_"), "https")

VAR_DIR = BASE_DIR / "var"
TOKENLENS_MODEL_CACHE = Path(env_str("TOKENLENS_MODEL_CACHE", str(VAR_DIR / "models")))
# numba's machine code (UMAP, for head maps), compiled once by `make models`: a new worker's
# first head map then costs about a warm one (engine.jit_cache).
TOKENLENS_NUMBA_CACHE = Path(env_str("TOKENLENS_NUMBA_CACHE", str(TOKENLENS_MODEL_CACHE / "numba")))
TOKENLENS_DEVICE = env_str("TOKENLENS_DEVICE", "auto")
TOKENLENS_DEFAULT_MODEL = env_str("TOKENLENS_DEFAULT_MODEL", "smollm2-135m-instruct")
TOKENLENS_EXTRA_MODELS = env_list("TOKENLENS_EXTRA_MODELS")
TOKENLENS_TASK_TIMEOUT = env_int("TOKENLENS_TASK_TIMEOUT", 180)
# Jobs (and their results) are deleted once unchanged for this long (inspector/job_expiry.py).
TOKENLENS_JOB_TTL_HOURS = env_int("TOKENLENS_JOB_TTL_HOURS", 24)
if TOKENLENS_JOB_TTL_HOURS < 1:
    raise ImproperlyConfigured(
        f"TOKENLENS_JOB_TTL_HOURS must be at least 1 (a page may still be following a job), "
        f"got {TOKENLENS_JOB_TTL_HOURS}"
    )
# A running generate-to-end renews its lease this often (a third of it); a dead worker's
# generation is reported stopped once its lease lapses.
TOKENLENS_LEASE_SECONDS = env_int("TOKENLENS_LEASE_SECONDS", 15)
# Key/value caches of branches kept per model in each worker (least recently used evicted).
TOKENLENS_KV_CACHE_MB = env_int("TOKENLENS_KV_CACHE_MB", 1024)
TOKENLENS_MAX_TEXT_CHARS = env_int("TOKENLENS_MAX_TEXT_CHARS", 200_000)
# Model work each person may ask for per minute, in token passes (inspector/budget.py):
# signed-in people, visitors, and how many visitors' budgets one address may use together.
TOKENLENS_COMPUTE_BUDGET = env_int("TOKENLENS_COMPUTE_BUDGET", 20_000)
TOKENLENS_VISITOR_BUDGET = env_int("TOKENLENS_VISITOR_BUDGET", 5_000)
TOKENLENS_VISITORS_PER_ADDRESS = env_int("TOKENLENS_VISITORS_PER_ADDRESS", 30)
# Attention maps one request may hold: layers x heads x tokens x tokens (4 bytes each).
TOKENLENS_MAX_ATTENTION_CELLS = env_int("TOKENLENS_MAX_ATTENTION_CELLS", 64 * 2**20)
# Generation requests (step, generate to the end, branch) per user or visitor: "<n>/<s|m|h|d>".
TOKENLENS_GENERATION_RATE = env_str("TOKENLENS_GENERATION_RATE", "120/m")
TOKENLENS_MAX_PROMPT_CHARS = env_int("TOKENLENS_MAX_PROMPT_CHARS", 50_000)
TOKENLENS_MAX_STEPS_PER_BRANCH = env_int("TOKENLENS_MAX_STEPS_PER_BRANCH", 1024)
TOKENLENS_MAX_BRANCHES = env_int("TOKENLENS_MAX_BRANCHES", 64)
# Demo accounts made by `make run` on an empty database; their passwords are printed.
TOKENLENS_DEMO = env_bool("TOKENLENS_DEMO", DEBUG)
TOKENLENS_REDIS_URL = env_str("TOKENLENS_REDIS_URL", "")
TOKENLENS_DATABASE_URL = env_str("TOKENLENS_DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
# Tasks run in threads of the web process unless a broker is configured.
TOKENLENS_TASKS_IN_PROCESS = not TOKENLENS_REDIS_URL
# Tasks one worker process runs at once (Celery's --concurrency of its thread pool, or the
# embedded worker's threads). They wait on the model's scheduler, which batches their steps
# into shared passes, so this bounds how many people's steps one pass can hold.
TOKENLENS_WORKER_THREADS = env_int("TOKENLENS_WORKER_THREADS", 32)
# A worker (or the embedded one, as daphne starts) loads the default model and UMAP's code
# before anyone asks, so the first request after a start does not wait for them.
TOKENLENS_WARM_UP = env_bool("TOKENLENS_WARM_UP", True)
# Threads one forward pass may use on the CPU: half the processor's cores by default, as the
# web server, the database and Redis usually share the machine (on 2 cores, 1 thread gave
# both one student and a class more steps a second than 2; bench/classroom.py).
TOKENLENS_TORCH_THREADS = env_int(
    "TOKENLENS_TORCH_THREADS", max(1, len(os.sched_getaffinity(0)) // 2)
)
# API steps and turns answered when the worker sends the answer, with no thread waiting for
# it (inspector.explorations.answered_later); false: they wait in a thread, as other API work.
TOKENLENS_API_ANSWERED_LATER = env_bool("TOKENLENS_API_ANSWERED_LATER", True)
# With Celery: threads of each web process that wait for API results (inspector.compute.dispatch).
TOKENLENS_WEB_WAITERS = env_int("TOKENLENS_WEB_WAITERS", 64)
# The models a Celery worker serves (`make worker MODELS=a,b`); empty: every catalog model.
TOKENLENS_WORKER_MODELS = env_list("TOKENLENS_WORKER_MODELS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_htmx",
    "template_partials",
    "inspector",
]

MIDDLEWARE = [
    "inspector.middleware.RefuseNulMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "inspector.compute.budget.BudgetMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "inspector.outages.OutageMiddleware",
]

ROOT_URLCONF = "tokenlens_site.urls"
ASGI_APPLICATION = "tokenlens_site.asgi.application"
WSGI_APPLICATION = None

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
                "inspector.context_processors.service_status",
            ],
        },
    },
]

DATABASES = {"default": dj_database_url.parse(TOKENLENS_DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Under daphne every thread would keep its own persistent connection (98 of a server's
    # 100 with 16 clients): psycopg's pool bounds them, and a request waits up to `timeout`
    # for a free one. Persistent connections (CONN_MAX_AGE) must be off with a pool.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env_int("TOKENLENS_DB_POOL_SIZE", 8),
        "timeout": env_int("TOKENLENS_DB_POOL_TIMEOUT", 10),
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The worker thread writes steps while pages read: WAL lets readers go on during a write,
    # IMMEDIATE takes the write lock up front (no "database is locked" half-way through a
    # transaction), and synchronous=NORMAL is still crash-safe under WAL without an fsync per
    # step.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # The charting library, served from its own PyPI package (no copy in the repository).
    ("vendor/plotly", Path(find_spec("plotly").submodule_search_locations[0]) / "package_data"),
]
STATIC_ROOT = VAR_DIR / "static"
WHITENOISE_USE_FINDERS = DEBUG


def redis_channel_layer(url: str) -> dict:
    """channels-redis on `url`. Its blocking read waits up to 5 s, which equals redis-py's
    default socket timeout: idle websockets then dropped every 5-6 s (code 1011). The socket
    timeout stays above the read's; connecting fails fast when Redis is down."""
    host = {"address": url, "socket_timeout": 15, "socket_connect_timeout": 2}
    return {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [host]}}


if TOKENLENS_REDIS_URL:
    CHANNEL_LAYERS = {"default": redis_channel_layer(TOKENLENS_REDIS_URL)}
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": TOKENLENS_REDIS_URL,
            "OPTIONS": {
                "socket_connect_timeout": 1,
                "socket_timeout": 1,
                # One pool per process: Django's cache objects are per thread.
                "pool_class": "inspector.compute.redis_pool.SharedConnectionPool",
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = TOKENLENS_REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = TOKENLENS_REDIS_URL or None
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Threads, never prefork: the models stay in the one process that loaded them (CUDA is not
# fork-safe), and its tasks wait together on the model's scheduler (worker.scheduler).
CELERY_WORKER_POOL = "threads"
CELERY_WORKER_CONCURRENCY = TOKENLENS_WORKER_THREADS
# One queue per model and one per worker; each task carries its route (model, affinity).
CELERY_TASK_ROUTES = ("inspector.compute.routing.route_task",)
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_EXPIRES = 3600
# Redis down: fail within a second or two instead of retrying for ~20 s (the page shows the
# banner and the API answers 503).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 1,
    "socket_timeout": 5,
    "max_retries": 0,
}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 1
CELERY_REDIS_SOCKET_TIMEOUT = 5
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"retry_policy": {"max_retries": 0}}

REST_FRAMEWORK = {
    "EXCEPTION_HANDLER": "inspector.api.errors.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "inspector.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "inspector.accounts.authentication.BrowserSessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "TokenLens API",
    "DESCRIPTION": (
        "Open a causal language model and watch it work: tokenization, distributions, "
        "attention, logit lens, attribution, explorations with branches, lessons and sharing. "
        "Browsers use their session (send the CSRF token); scripts send "
        "`Authorization: Token <key>` (create a key on your account page). Errors are "
        '`{"error": {"field": ..., "message": ...}}`.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Fields of one name with different choices get names of their own (not hashed ones).
    "ENUM_NAME_OVERRIDES": {
        "StepModeEnum": "inspector.models.explorations.Step.Mode",
        "StepRequestModeEnum": ["sample", "greedy", "force"],
        "QuestionKindEnum": "inspector.models.questions.LessonQuestion.Kind",
    },
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "explorations"
LOGOUT_REDIRECT_URL = "home"
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "TokenLens <tokenlens@localhost>")


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("TOKENLENS_LOG_LEVEL", "INFO")},
}
