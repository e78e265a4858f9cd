"""Steward settings: one module, driven by environment variables with working defaults."""

import os
import subprocess
from datetime import timedelta
from pathlib import Path

import dj_database_url

from jobs.conf import from_environment as engine_settings_from_environment
from jobs.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def code_version() -> str:
    """The deployed revision, recorded on every job run."""
    if version := os.environ.get("STEWARD_CODE_VERSION"):
        return version
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=2,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# The development key is public: project/wsgi.py refuses to serve with it while DEBUG is off.
DEVELOPMENT_SECRET_KEY = "steward-insecure-development-key-change-me"
SECRET_KEY = os.environ.get("SECRET_KEY") or DEVELOPMENT_SECRET_KEY
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")

# --- Deployment security: what `manage.py check --deploy` asks for, off until set ----------
# Behind a TLS-terminating proxy: SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https
SECURE_PROXY_SSL_HEADER = tuple(env_list("SECURE_PROXY_SSL_HEADER", "")) or None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    # First: an actor imported before its AppConfig runs binds silently to a fallback broker.
    "django_dramatiq",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "ledger",
    "leaderboard",
    # After the domain apps, so the engine's own jobs come last in the catalog.
    "jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "project.urls"

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

WSGI_APPLICATION = "project.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        # Kept open between a worker's messages (a new connection per run costs more than the
        # run), and checked before reuse, so a restarted database is reconnected to.
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker threads share one file: wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Failed logins (the admin's form) go through django-axes: after LOGIN_FAILURE_LIMIT failures for
# one username from one address, that pair is refused with a 429 until LOGIN_COOLOFF_MINUTES
# have passed since its last try; a successful login clears its failures.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "jobs.api.throttling.login_lockout_response"
# Not its start-up line on every command's stderr; lockouts are still logged.
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `collectstatic` gathers the static files here, and project/wsgi.py serves them (WhiteNoise).
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "var" / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # A gzipped copy beside each file, which WhiteNoise sends to clients that accept it.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# The API's failed-token counts live in the default cache, per process unless several web
# processes share one: CACHE_BACKEND=django.core.cache.backends.redis.RedisCache with
# CACHE_LOCATION=redis://host:6379/1 (a database of its own: clearing a cache flushes it).
CACHES = {
    "default": {
        "BACKEND": env_str("CACHE_BACKEND", "django.core.cache.backends.locmem.LocMemCache"),
        "LOCATION": env_str("CACHE_LOCATION", ""),
    }
}

LOGIN_URL = "/admin/login/"

# --- Email and alerts -------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "steward@localhost")
SERVER_EMAIL = env_str("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
ADMINS = [("Steward operators", address) for address in env_list("ALERT_EMAILS", "")]

# --- Dramatiq ---------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")

DRAMATIQ_BROKER = {
    "BROKER": "jobs.broker.PromptRedisBroker",
    "OPTIONS": {
        "url": REDIS_URL,
        # redis-py's default 5 s socket timeout breaks blocking result waits.
        "socket_timeout": 30,
        "heartbeat_timeout": env_int("DRAMATIQ_HEARTBEAT_TIMEOUT_MS", 60_000),
        "maintenance_chance": env_int("DRAMATIQ_MAINTENANCE_CHANCE", 1_000),
    },
    # This list replaces Dramatiq's defaults, so every middleware we rely on is named here.
    "MIDDLEWARE": [
        "dramatiq.middleware.AgeLimit",
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.ShutdownNotifications",
        "dramatiq.middleware.Callbacks",
        "dramatiq.middleware.Pipelines",
        "dramatiq.middleware.Retries",
        "dramatiq.middleware.CurrentMessage",
        "jobs.middleware.SlotTicks",
        "jobs.middleware.GracefulShutdown",
        "jobs.middleware.WorkerHeartbeats",
        "jobs.middleware.WorkerMetrics",
        "jobs.middleware.QueueControls",
        "jobs.middleware.EnqueueTimes",
        "jobs.middleware.DatabaseConnections",
    ],
}
DRAMATIQ_AUTODISCOVER_MODULES = ["tasks"]

# --- Steward ---------------------------------------------------------------------------------
# Engine settings (retries, batches, fan-out, schedule ticks, retention, metrics) and their
# defaults live in jobs/conf.py; any of them is set here from the environment as
# STEWARD_<NAME>, and per job as STEWARD_JOB_<NAME>_CRON / _MAX_RETRIES / _MIN_BACKOFF_MS /
# _TIME_LIMIT_MS.
globals().update(engine_settings_from_environment(os.environ))
STEWARD_CODE_VERSION = code_version()
# Notification delivery draws on the fleet-wide limits "channel-<channel>".
STEWARD_QUEUE_RATE_LIMITS = env_str(
    "STEWARD_QUEUE_RATE_LIMITS", "channel-push=6000/60,channel-sms=600/60,channel-email=600/60"
)
STEWARD_METRICS_COLLECTORS = [
    "jobs.metrics.JobRunCollector",
    "ledger.metrics.EscrowLagCollector",
]
STEWARD_METRICS_TOKEN = env_str("METRICS_TOKEN", "")
STEWARD_METRICS_PUBLIC = env_bool("METRICS_PUBLIC", False)
# The dashboard's business-lag panel: the ledger's escrows overdue for release.
STEWARD_DASHBOARD_LAG = "ledger.selectors.escrow_release_lag_panel"
# The dashboard's domain trends: the money held, from the daily balance snapshots.
STEWARD_DASHBOARD_TRENDS = ["ledger.selectors.money_held_trend"]
STEWARD_RUN_RETENTION_DAYS = env_int("JOB_RUN_RETENTION_DAYS", 30)
STEWARD_FAILED_RUN_RETENTION_DAYS = env_int("FAILED_JOB_RUN_RETENTION_DAYS", 90)

# --- Ledger -----------------------------------------------------------------------------------
STEWARD_CHANNEL_BACKENDS = {
    "push": env_str("STEWARD_PUSH_BACKEND", "ledger.channels.LoggingChannel"),
    "sms": env_str("STEWARD_SMS_BACKEND", "ledger.channels.LoggingChannel"),
    "email": env_str("STEWARD_EMAIL_CHANNEL_BACKEND", "ledger.channels.EmailChannel"),
}
NOTIFICATION_MAX_ATTEMPTS = env_int("NOTIFICATION_MAX_ATTEMPTS", 5)
NOTIFICATION_BACKOFF_SECONDS = env_int("NOTIFICATION_BACKOFF_SECONDS", 30)
# A notification claimed for sending longer ago than this belongs to a lost worker.
NOTIFICATION_SENDING_TIMEOUT_MINUTES = env_int("NOTIFICATION_SENDING_TIMEOUT_MINUTES", 15)
# Sent notifications are pruned by `cleanup` after this many days.
NOTIFICATION_RETENTION_DAYS = env_int("NOTIFICATION_RETENTION_DAYS", 30)
# Alert when an escrow is overdue for release by more than this.
ESCROW_LAG_ALERT_MINUTES = env_int("ESCROW_LAG_ALERT_MINUTES", 120)
# Ledger rules, in hours/days so tests and the fault suite can shorten them.
ESCROW_HOLD_HOURS = env_int("ESCROW_HOLD_HOURS", 48)
MATCH_EXPIRY_HOURS = env_int("MATCH_EXPIRY_HOURS", 24)
CYCLE_DUE_DAYS = env_int("CYCLE_DUE_DAYS", 30)
CYCLE_REMINDER_DAYS = env_int("CYCLE_REMINDER_DAYS", 7)
DONOR_RELEASE_COINS = env_int("DONOR_RELEASE_COINS", 50)
# Charity Coins booked to a user for each milestone reached (check_milestones); 0: none.
MILESTONE_BONUS_COINS = env_int("MILESTONE_BONUS_COINS", 0)
# Daily balance snapshots (snapshot_balances) are kept this many days.
BALANCE_SNAPSHOT_RETENTION_DAYS = env_int("BALANCE_SNAPSHOT_RETENTION_DAYS", 90)

# --- Logging ----------------------------------------------------------------------------------
# STEWARD_LOG_FORMAT: "text" (with the time), "plain" (without: honcho stamps each line under
# `make run`) or "json" (one object per line, a run's id, job and attempt as fields).
LOGGING = logging_config(
    log_format=env_str("STEWARD_LOG_FORMAT", "text"), level=env_str("LOG_LEVEL", "INFO")
)

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header is what turns an anonymous request into a 401.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "jobs.api.throttling.ThrottledTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_PARSER_CLASSES": ["jobs.api.parsers.LimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "jobs.api.exception_handlers.api_exception_handler",
    # Failed token authentications per client address; past the rate its tokens get a 429.
    "DEFAULT_THROTTLE_RATES": {"failed_token": env_str("API_FAILED_TOKEN_RATE", "10/min")},
    # The client address is REMOTE_ADDR unless this many proxies in front add X-Forwarded-For.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Steward API",
    "DESCRIPTION": "Operate Steward's background jobs: trigger, pause, inspect runs and queues.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc come from drf-spectacular-sidecar's static files, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Leaderboard ------------------------------------------------------------------------------
# A game session still active after this many minutes is abandoned and deleted by `cleanup`.
SESSION_EXPIRY_MINUTES = env_int("SESSION_EXPIRY_MINUTES", 30)
# Scores older than this move to the archive (when archiving is on).
LEADERBOARD_ARCHIVE_AGE_DAYS = env_int("LEADERBOARD_ARCHIVE_AGE_DAYS", 90)
LEADERBOARD_ARCHIVING = env_bool("LEADERBOARD_ARCHIVING", True)
