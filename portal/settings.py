"""Settings for Xinyong, read from the environment with safe local defaults.

Every variable read here is listed in `.env.example`; secrets come only from the environment.
"""

import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    """Return an environment variable, or the default."""
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    """Return an environment variable read as a boolean."""
    return env(name, "1" if default else "0").lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("DJANGO_DEBUG")
SECRET_KEY = env("DJANGO_SECRET_KEY") or ("insecure-local-only" if DEBUG else "")
if not SECRET_KEY:
    raise RuntimeError("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
# Keyed hash for personal ID numbers: the full number is never stored, only this HMAC.
PERSON_ID_HASH_KEY = env("PERSON_ID_HASH_KEY") or SECRET_KEY


def derived_key(secret: str, purpose: str) -> str:
    """Return a 256-bit key for one purpose, derived from a secret with HKDF-SHA256 (as hex)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
    return hkdf.derive(secret.encode()).hex()


# Raw uploaded files hold full personal ID numbers, so they are encrypted at rest with this key
# (lists/services/raw_files.py). Local runs derive one from SECRET_KEY; production must set it.
# Old keys stay readable: after a rotation, list the previous keys in UPLOAD_ENCRYPTION_OLD_KEYS.
UPLOAD_ENCRYPTION_KEY = env("UPLOAD_ENCRYPTION_KEY") or (
    derived_key(SECRET_KEY, "xinyong upload encryption") if DEBUG else ""
)
if not UPLOAD_ENCRYPTION_KEY:
    raise RuntimeError("UPLOAD_ENCRYPTION_KEY must be set when DJANGO_DEBUG is off")
UPLOAD_ENCRYPTION_OLD_KEYS = [k for k in env("UPLOAD_ENCRYPTION_OLD_KEYS").split(",") if k]

ALLOWED_HOSTS = env("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
CSRF_TRUSTED_ORIGINS = [o for o in env("DJANGO_CSRF_TRUSTED_ORIGINS").split(",") if o]
DATA_DIR = Path(env("XINYONG_DATA_DIR", str(BASE_DIR / "var")))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    # Optional TOTP second factor for staff (portal/staff/auth.py).
    "django_otp",
    "django_otp.plugins.otp_totp",
    "agencies",
    "lists",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "portal.security.SecurityHeadersMiddleware",  # CSP, Permissions-Policy
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "portal.middleware.ChosenLanguageMiddleware",  # LocaleMiddleware, Chinese unless chosen otherwise
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "portal.security.IdleTimeoutMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "portal.staff.auth.StaffOtpMiddleware",  # TOTP-verified sessions where required
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/xinyong"),
        conn_max_age=int(env("DATABASE_CONN_MAX_AGE", "60")),
    )
}
# Publishing stages a big batch in temp tables; with PostgreSQL's default 8 MB of temp buffers a
# million staged rows (~600 MB) are written out and read back through the kernel at every step.
# A session allocates temp buffers only as its temp tables need them, so the rest pay nothing.
_db_options = DATABASES["default"].setdefault("OPTIONS", {})
_db_options["options"] = " ".join(
    filter(None, [_db_options.get("options"), f"-c temp_buffers={env('DATABASE_TEMP_BUFFERS', '1GB')}"])
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        # Fails open: a Redis outage makes cache reads miss instead of failing pages (issue 8).
        "BACKEND": "portal.cache.FailOpenRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", "xinyong"),
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "staff:login"
LOGIN_REDIRECT_URL = "staff:dashboard"  # signing in with no `next` (Django's default is a 404)

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "portal" / "static"]
# Uploaded raw files and evidence are private: never served under STATIC or a public URL.
MEDIA_ROOT = DATA_DIR / "media"
STORAGES = {
    # Written to a temporary file, then linked into place: a full disk leaves no truncated file.
    "default": {"BACKEND": "portal.storage.AtomicFileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

UPLOAD_MAX_BYTES = int(env("UPLOAD_MAX_BYTES", str(200 * 1024 * 1024)))
UPLOAD_MAX_ROWS = int(env("UPLOAD_MAX_ROWS", "2000000"))
# Files from this size up are validated by BATCH_WORKERS forked processes (default: one per core).
BATCH_PARALLEL_MIN_BYTES = int(env("BATCH_PARALLEL_MIN_BYTES", str(8 * 1024 * 1024)))
BATCH_WORKERS = int(env("BATCH_WORKERS", str(min(os.cpu_count() or 1, 4))))
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "noreply@xinyong.localhost")

SESSION_COOKIE_AGE = int(env("SESSION_COOKIE_AGE", str(8 * 3600)))
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT")
# Health checks come from inside the compose network over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = int(env("DJANGO_HSTS_SECONDS", "0"))
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Security hardening (issue 8); docs/security.md explains each choice.
# Both only take effect when DJANGO_HSTS_SECONDS > 0. The preload flag alone lists nothing:
# submitting the domain to the browsers' preload list is a separate, deliberate step.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Behind a TLS-terminating proxy, name the header it sets (e.g. HTTP_X_FORWARDED_PROTO): only
# then is "https" in it trusted. Never set it without such a proxy, or clients could spoof it.
if env("DJANGO_SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = (env("DJANGO_SECURE_PROXY_SSL_HEADER"), "https")
# How many proxies in front of the portal each append the address they were reached from to
# X-Forwarded-For (portal.security.client_ip). 0: the client is REMOTE_ADDR and the header is
# ignored, as it must be without such proxies: any client can write it.
TRUSTED_PROXY_COUNT = int(env("DJANGO_TRUSTED_PROXY_COUNT", "0"))
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
# No script reads the CSRF cookie (forms carry the token), so scripts need not see it either.
CSRF_COOKIE_HTTPONLY = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = env_bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", True)
# A signed-in staff session ends after this many seconds without a request (0: no idle limit).
SESSION_IDLE_SECONDS = int(env("SESSION_IDLE_SECONDS", str(30 * 60)))
# No inline script or style anywhere: templates load portal/static/ files only.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
# Failed staff sign-ins allowed per username and per client address within the lockout window.
LOGIN_FAILURES_PER_USERNAME = int(env("LOGIN_FAILURES_PER_USERNAME", "5"))
LOGIN_FAILURES_PER_IP = int(env("LOGIN_FAILURES_PER_IP", "20"))
LOGIN_LOCKOUT_SECONDS = int(env("LOGIN_LOCKOUT_SECONDS", "900"))
# When on, approvers and agency admins must confirm a TOTP code before approving or publishing.
REQUIRE_TOTP_FOR_APPROVERS = env_bool("REQUIRE_TOTP_FOR_APPROVERS")
OTP_TOTP_ISSUER = "Xinyong"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # DRF's defaults, with a JSON parser that answers 10,000-deep nesting with a 400 (issue 8).
    "DEFAULT_PARSER_CLASSES": [
        "portal.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["portal.api.permissions.PublicRead"],
    # Per-key rate and daily quota in Redis; 429 with Retry-After, 503 for keys when Redis is down.
    "DEFAULT_THROTTLE_CLASSES": ["portal.api.throttling.KeyQuotaThrottle"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Xinyong API",
    "VERSION": "1.0.0",
    # One name for the subject-type choices wherever they appear (else check --deploy warns W001).
    "ENUM_NAME_OVERRIDES": {"SubjectTypeEnum": "lists.models.SubjectType"},
}
XY_API_ANON_PER_MINUTE = int(env("XY_API_ANON_PER_MINUTE", "60"))
XY_SCREEN_MAX_QUERIES = 1000

CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# With acks_late, a task whose worker died (SIGKILL, OOM, lost host) stays unacknowledged in Redis
# and is handed to another worker once it is older than visibility_timeout. It must be longer than
# any task runs and than any retry countdown (sync: 900 s processing plus fetches; retry backoff up
# to 900 s), or a slow task is delivered twice while still running. docs/reliability.md.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(env("CELERY_VISIBILITY_TIMEOUT", "7200")),
    # How often a worker looks for such orphaned tasks (kombu's default).
    "unacked_restore_interval": int(env("CELERY_UNACKED_RESTORE_INTERVAL", "10")),
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
# Feed fetches get their own queue (and worker) so a hanging agency server never delays expiry.
CELERY_TASK_ROUTES = {"lists.tasks.sync_source": {"queue": "sync"}}
# Processing time allowed to one sync run on top of its pages' HTTP timeouts (celery soft limit).
SYNC_PROCESS_SECONDS = int(env("SYNC_PROCESS_SECONDS", "900"))
DEMO_FEED_ENABLED = env_bool("DEMO_FEED_ENABLED", DEBUG)
CELERY_BEAT_SCHEDULE: dict = {
    "expire-listings": {"task": "lists.tasks.expire_listings", "schedule": crontab(minute="*/5")},
    # Only enqueues: each due source runs as its own task on the "sync" queue with its own limits.
    "sync-due-sources": {"task": "lists.tasks.sync_due_sources", "schedule": crontab(minute="*")},
    "requeue-stranded-batches": {
        "task": "lists.tasks.requeue_stranded_batches",
        "schedule": crontab(minute="*/5"),
    },
    "escalate-overdue-cases": {
        "task": "lists.tasks.escalate_overdue_cases",
        "schedule": crontab(minute=15, hour="8-18"),
    },
    # Integrators: exports within a minute of a publish and nightly in full; webhooks every 15 s.
    "refresh-exports": {"task": "lists.tasks.refresh_exports", "schedule": crontab(minute="*")},
    "nightly-exports": {
        "task": "lists.tasks.refresh_exports",
        "schedule": crontab(minute=30, hour=2),
        "kwargs": {"force": True},
    },
    "dispatch-webhooks": {"task": "lists.tasks.dispatch_webhooks", "schedule": 15.0},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
}
