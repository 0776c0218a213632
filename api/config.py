"""One environment-driven configuration. Every variable is listed in the README."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from api.version import __version__

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = Path(os.environ.get("WAYMARK_INSTANCE_DIR", ROOT / "instance"))

REDISCLOSURE_NOTICE = (
    "This record which has been disclosed to you is protected by Federal confidentiality rules "
    "(42 CFR part 2). These rules prohibit you from using or disclosing this record, or testimony "
    "that describes the information contained in this record, in any civil, criminal, "
    "administrative, or legislative proceedings by any Federal, State, or local authority, against "
    "the patient, unless authorized by the consent of the patient, except as provided at 42 CFR "
    "2.12(c)(5) or as authorized by a court in accordance with 42 CFR 2.64 or 2.65. In addition, "
    "the Federal rules prohibit you from making any other use or disclosure of this record unless "
    "at least one of the following applies: (i) further use or disclosure is expressly permitted "
    "by the written consent of the individual whose information is being disclosed in this record "
    "or as otherwise permitted by 42 CFR part 2; (ii) you are a covered entity or business "
    "associate and have received the record for treatment, payment, or health care operations, or "
    "(iii) you have received the record from a covered entity or business associate as permitted "
    "by 45 CFR part 164, subparts A and E. A general authorization for the release of medical or "
    "other information is NOT sufficient to meet the required elements of written consent to "
    "further use or redisclose the record (see 42 CFR 2.31)."
)

CONSENT_REVOCATION_STATEMENT = (
    "You may revoke this consent at any time in the app (Sharing, then Revoke). Revocation takes "
    "effect at once: from that moment the recipient sees nothing more, and nothing more is sent. "
    "Revoking does not undo disclosures already made while the consent was in force."
)

# Browsers' push services; a Web Push subscription elsewhere is refused (docs/push.md).
DEFAULT_WEBPUSH_ORIGINS = (
    "https://fcm.googleapis.com",
    "https://*.push.services.mozilla.com",
    "https://*.notify.windows.com",
    "https://web.push.apple.com",
)

CRISIS_RESOURCES = (
    '[{"name": "988 Suicide & Crisis Lifeline", "contact": "Call or text 988"},'
    ' {"name": "SAMHSA National Helpline", "contact": "1-800-662-4357 (free, confidential, 24/7)"}]'
)


DOCS_ASSETS_PATH = "/docs/assets/"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _dev_secret(name: str) -> str:
    """A development secret made once and kept under instance/, so restarts keep tokens valid."""
    INSTANCE.mkdir(parents=True, exist_ok=True)
    path = INSTANCE / name
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _derived_key(secret: str, purpose: str) -> str:
    """A Fernet key derived from SECRET_KEY for one purpose (development and tests only:
    production sets its own, so that a leaked SECRET_KEY does not also open the data)."""
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    raw = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"waymark {purpose}".encode()
    ).derive(secret.encode())
    return base64.urlsafe_b64encode(raw).decode()


def _fernet_key_problem(name: str, key: str) -> str | None:
    from cryptography.fernet import Fernet

    try:
        Fernet(key)
    except ValueError:
        return f"{name} must be a Fernet key (32 url-safe base64-encoded bytes)"
    return None


def _refuse_unsafe_production(cfg: Config) -> None:
    """WAYMARK_ENV=production starts only with settings that make sense for real patients."""
    from urllib.parse import urlsplit

    problems: list[str] = []
    if not cfg.DATABASE_URL or cfg.DATABASE_URL.startswith("sqlite"):
        problems.append("DATABASE_URL must point at PostgreSQL (SQLite is one host, one disk)")
    host = urlsplit(_env("PUBLIC_BASE_URL") or "").hostname or ""
    if not host or host == "localhost" or host.startswith("127.") or host in ("::1", "0.0.0.0"):  # noqa: S104
        problems.append("PUBLIC_BASE_URL must be the public address (links in emails use it)")
    for name in ("SMTP_HOST", "MAIL_FROM"):
        if not _env(name):
            problems.append(f"{name} must be set (reminders and account mail)")
    if any(len(k) < 32 for k in cfg.SECRET_KEY_PREVIOUS):
        problems.append("SECRET_KEY_PREVIOUS keys must be 32+ characters each")
    if not _env("MFA_ENCRYPTION_KEY"):
        problems.append(
            "MFA_ENCRYPTION_KEY must be set (it encrypts TOTP secrets at rest; not derived "
            "from SECRET_KEY in production)"
        )
    if problems:
        raise RuntimeError("WAYMARK_ENV=production refuses to start: " + "; ".join(problems))


class Config:
    """Read once at app creation; tests subclass it."""

    def __init__(self) -> None:  # noqa: PLR0915 - one statement per setting, on purpose
        self.ENV = _env("WAYMARK_ENV", "development")
        self.TESTING = False
        default_db = f"sqlite:///{INSTANCE / 'waymark.sqlite3'}"
        self.DATABASE_URL = _env("DATABASE_URL", default_db)
        self.DB_POOL_SIZE = _int("DB_POOL_SIZE", 5)
        self.REDIS_URL = _env("REDIS_URL")  # None: shared state (throttles) lives in the database
        # The scraper's bearer token for /metrics; unset, /metrics is not served (404): it shows
        # per-route counts of sign-ins and errors, which are nobody else's business.
        self.METRICS_TOKEN = _env("METRICS_TOKEN") or None
        secret = _env("SECRET_KEY")
        if self.ENV == "production" and len(secret or "") < 32:
            # HS256 wants a key of at least its 256-bit output; a short one is guessable offline.
            raise RuntimeError("WAYMARK_ENV=production needs a SECRET_KEY of 32+ characters")
        self.SECRET_KEY = secret or _dev_secret("secret_key")
        # Rotation: the keys SECRET_KEY replaced, comma-separated. They only verify (access
        # tokens, stored Idempotency-Key hashes), never sign; drop them once ACCESS_TOKEN_TTL has
        # passed since the switch (docs/operations.md).
        self.SECRET_KEY_PREVIOUS = [
            k.strip() for k in (_env("SECRET_KEY_PREVIOUS", "") or "").split(",") if k.strip()
        ]
        # Encrypts TOTP secrets at rest and keys the recovery-code hashes (api.auth.mfa): a
        # Fernet key. Rotation: the keys it replaced, comma-separated; they only decrypt, and a
        # secret is re-encrypted under the new key at its owner's next sign-in.
        self.MFA_ENCRYPTION_KEY = _env("MFA_ENCRYPTION_KEY") or _derived_key(self.SECRET_KEY, "mfa")
        self.MFA_ENCRYPTION_KEY_PREVIOUS = [
            k.strip()
            for k in (_env("MFA_ENCRYPTION_KEY_PREVIOUS", "") or "").split(",")
            if k.strip()
        ]
        for i, key in enumerate([self.MFA_ENCRYPTION_KEY, *self.MFA_ENCRYPTION_KEY_PREVIOUS]):
            problem = _fernet_key_problem(
                "MFA_ENCRYPTION_KEY" if i == 0 else "MFA_ENCRYPTION_KEY_PREVIOUS", key
            )
            if problem:
                raise RuntimeError(problem)
        self.JWT_ISSUER = _env("JWT_ISSUER", "waymark")
        self.JWT_AUDIENCE = _env("JWT_AUDIENCE", "waymark-api")
        self.ACCESS_TOKEN_TTL = _int("ACCESS_TOKEN_TTL", 900)
        self.REFRESH_TOKEN_TTL = _int("REFRESH_TOKEN_TTL", 30 * 24 * 3600)
        self.REFRESH_REUSE_GRACE = _int("REFRESH_REUSE_GRACE", 30)
        # OWASP minimum for argon2id is m=19 MiB, t=2, p=1; we default above it.
        self.ARGON2_MEMORY_KIB = _int("ARGON2_MEMORY_KIB", 19 * 1024)
        self.ARGON2_TIME_COST = _int("ARGON2_TIME_COST", 2)
        self.ARGON2_PARALLELISM = _int("ARGON2_PARALLELISM", 1)
        self.LOGIN_MAX_FAILURES_PER_ACCOUNT = _int("LOGIN_MAX_FAILURES_PER_ACCOUNT", 5)
        self.LOGIN_MAX_FAILURES_PER_ADDRESS = _int("LOGIN_MAX_FAILURES_PER_ADDRESS", 20)
        self.LOGIN_FAILURE_WINDOW = _int("LOGIN_FAILURE_WINDOW", 900)
        self.REGISTER_MAX_PER_ADDRESS = _int("REGISTER_MAX_PER_ADDRESS", 10)
        self.REGISTER_WINDOW = _int("REGISTER_WINDOW", 3600)
        # Password reset and email verification (docs/contract.md "Password reset and email
        # verification"): token lifetimes in seconds, whether an unverified address may sign in,
        # requests per client address and emails per account per window.
        self.PASSWORD_RESET_TTL = _int("PASSWORD_RESET_TTL", 1800)
        self.EMAIL_VERIFICATION_TTL = _int("EMAIL_VERIFICATION_TTL", 48 * 3600)
        self.REQUIRE_EMAIL_VERIFICATION = _bool("REQUIRE_EMAIL_VERIFICATION", False)
        self.EMAIL_TOKEN_MAX_PER_ADDRESS = _int("EMAIL_TOKEN_MAX_PER_ADDRESS", 10)
        self.EMAIL_TOKEN_MAX_PER_ACCOUNT = _int("EMAIL_TOKEN_MAX_PER_ACCOUNT", 3)
        self.EMAIL_TOKEN_WINDOW = _int("EMAIL_TOKEN_WINDOW", 3600)
        self.MAX_CONTENT_LENGTH = _int("MAX_CONTENT_LENGTH", 1024 * 1024)
        self.TRUSTED_PROXIES = _int("TRUSTED_PROXIES", 0)
        self.IDEMPOTENCY_TTL = _int("IDEMPOTENCY_TTL", 48 * 3600)
        self.LOG_LEVEL = _env("LOG_LEVEL", "INFO")
        self.SMTP_HOST = _env("SMTP_HOST", "127.0.0.1")
        self.SMTP_PORT = _int("SMTP_PORT", 1025)
        self.SMTP_USERNAME = _env("SMTP_USERNAME")
        self.SMTP_PASSWORD = _env("SMTP_PASSWORD")
        self.SMTP_STARTTLS = _bool("SMTP_STARTTLS", False)
        self.MAIL_FROM = _env("MAIL_FROM", "Waymark <no-reply@waymark.invalid>")
        self.PUBLIC_BASE_URL = _env("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
        self._push_settings()
        self.SMTP_TIMEOUT = float(_env("SMTP_TIMEOUT", "10") or 10)
        self.SCHEDULER_STALE_AFTER = _int("SCHEDULER_STALE_AFTER", 180)
        # A scheduled dose is on time when taken within this many minutes of its time, and
        # missed once this long has passed without a log.
        self.ADHERENCE_ON_TIME_WINDOW_MINUTES = _int("ADHERENCE_ON_TIME_WINDOW_MINUTES", 60)
        self.MISSED_DOSES_INTERVAL = _int("MISSED_DOSES_INTERVAL", 300)
        self.MISSED_DOSES_LOOKBACK_DAYS = _int("MISSED_DOSES_LOOKBACK_DAYS", 7)
        # Reminders and the scheduler (docs/scheduler.md, docs/reminders.md).
        self.REMINDER_GRACE_MINUTES = _int("REMINDER_GRACE_MINUTES", 30)
        self.DISPATCH_INTERVAL = _int("DISPATCH_INTERVAL", 15)
        self.DISPATCH_BATCH_SIZE = _int("DISPATCH_BATCH_SIZE", 500)
        self.SEND_INTERVAL = _int("SEND_INTERVAL", 5)
        self.SEND_BATCH_SIZE = _int("SEND_BATCH_SIZE", 20)
        self.DELIVERY_MAX_ATTEMPTS = _int("DELIVERY_MAX_ATTEMPTS", 5)
        self.DELIVERY_BACKOFF_BASE = _int("DELIVERY_BACKOFF_BASE", 30)
        self.DELIVERY_BACKOFF_CAP = _int("DELIVERY_BACKOFF_CAP", 600)
        self.DELIVERY_LEASE = _int("DELIVERY_LEASE", 300)
        self.HEARTBEAT_INTERVAL = _int("HEARTBEAT_INTERVAL", 15)
        self.SCHEDULER_LEADER_RETRY = _int("SCHEDULER_LEADER_RETRY", 10)
        # "host:port" of the scheduler's own /metrics (jobs/metrics.py); unset: not served.
        self.SCHEDULER_METRICS_ADDR = _env("SCHEDULER_METRICS_ADDR")
        self.SCHEDULER_LOCK_KEY = _int("SCHEDULER_LOCK_KEY", 0x5741594D)  # "WAYM"
        self.REDISCLOSURE_NOTICE = _env("REDISCLOSURE_NOTICE", REDISCLOSURE_NOTICE)
        # Clinician summaries and alerts (docs/summaries.md).
        self.SUMMARY_MAX_DAYS = _int("SUMMARY_MAX_DAYS", 366)
        self.SUMMARY_TOP_SYMPTOMS = _int("SUMMARY_TOP_SYMPTOMS", 5)
        self.WEEKLY_SUMMARY_INTERVAL = _int("WEEKLY_SUMMARY_INTERVAL", 3600)
        self.WEEKLY_SUMMARY_BATCH_SIZE = _int("WEEKLY_SUMMARY_BATCH_SIZE", 500)
        self.ALERT_INTERVAL = _int("ALERT_INTERVAL", 900)
        self.ALERT_LOOKBACK_DAYS = _int("ALERT_LOOKBACK_DAYS", 28)
        # The withdrawal_threshold flag (docs/summaries.md). The old names (ALERT_*_SEVERE) are
        # still read so existing deployments keep their setting; a threshold is not a severity.
        self.ALERT_SOWS_THRESHOLD = _int("ALERT_SOWS_THRESHOLD", _int("ALERT_SOWS_SEVERE", 21))
        self.ALERT_COWS_THRESHOLD = _int("ALERT_COWS_THRESHOLD", _int("ALERT_COWS_SEVERE", 25))
        self.ALERT_MISSED_DOSES_RUN = _int("ALERT_MISSED_DOSES_RUN", 2)
        self.ALERT_CHECKIN_GAP_DAYS = _int("ALERT_CHECKIN_GAP_DAYS", 3)
        self.ALERT_CHECKIN_STREAK_DAYS = _int("ALERT_CHECKIN_STREAK_DAYS", 5)
        self.ALERT_RISING_RECENT_DAYS = _int("ALERT_RISING_RECENT_DAYS", 3)
        self.ALERT_RISING_BASELINE_DAYS = _int("ALERT_RISING_BASELINE_DAYS", 7)
        self.ALERT_RISING_PERCENT = _int("ALERT_RISING_PERCENT", 50)
        self.ALERT_RISING_MIN_DELTA = float(_env("ALERT_RISING_MIN_DELTA", "2") or 2)
        self.ALERT_RISING_MIN_RECENT = _int("ALERT_RISING_MIN_RECENT", 2)
        self.ALERT_RISING_MIN_BASELINE = _int("ALERT_RISING_MIN_BASELINE", 3)
        # Consents: who discloses (element 2 of 42 CFR 2.31) and how to revoke (element 6).
        self.PROGRAM_NAME = _env("PROGRAM_NAME", "Waymark")
        self.CONSENT_REVOCATION_STATEMENT = _env(
            "CONSENT_REVOCATION_STATEMENT", CONSENT_REVOCATION_STATEMENT
        )
        self.CLINICIAN_LOOKUP_MAX_PER_USER = _int("CLINICIAN_LOOKUP_MAX_PER_USER", 10)
        self.CLINICIAN_LOOKUP_MAX_PER_ADDRESS = _int("CLINICIAN_LOOKUP_MAX_PER_ADDRESS", 30)
        self.CLINICIAN_LOOKUP_WINDOW = _int("CLINICIAN_LOOKUP_WINDOW", 900)
        self.CRISIS_RESOURCES = _env("CRISIS_RESOURCES", CRISIS_RESOURCES)
        self.PROBLEM_BASE_URL = _env("PROBLEM_BASE_URL", "https://docs.waymark.invalid/problems/")
        self._export_settings()
        # The clinician dashboard (docs/dashboard.md) and CORS for clinics' own front ends.
        self.CLINIC_IDLE_TIMEOUT = _int("CLINIC_IDLE_TIMEOUT", 15 * 60)
        self.CLINIC_ABSOLUTE_TIMEOUT = _int("CLINIC_ABSOLUTE_TIMEOUT", 12 * 3600)
        self.CLINIC_PAGE_SIZE = _int("CLINIC_PAGE_SIZE", 50)
        # Comma-separated origins allowed to call the API from a browser; empty: none.
        self.CORS_ORIGINS = [
            o.strip() for o in (_env("CORS_ORIGINS", "") or "").split(",") if o.strip()
        ]
        if self.ENV == "production":
            _refuse_unsafe_production(self)

        # flask-smorest / OpenAPI
        self.API_TITLE = "Waymark API"
        # The release (CHANGELOG.md); the URL prefix /v1 is the contract's major version.
        self.API_VERSION = __version__
        self.OPENAPI_VERSION = "3.0.3"
        self.OPENAPI_URL_PREFIX = "/"
        self.OPENAPI_JSON_PATH = "openapi.json"
        self.OPENAPI_SWAGGER_UI_PATH = "docs"
        # Served from the swagger-ui-bundle package (api.openapi.serve_docs_assets): /docs works
        # without internet access, and no third party learns who reads the API's docs.
        self.OPENAPI_SWAGGER_UI_URL = _env("SWAGGER_UI_URL", DOCS_ASSETS_PATH)
        self.JSON_SORT_KEYS = False

    def _export_settings(self) -> None:
        """Export (docs/export.md, docs/fhir.md)."""
        self.FHIR_BASE_URL = _env("FHIR_BASE_URL", f"{self.PUBLIC_BASE_URL}/fhir")
        self.EXPORT_DIR = _env("EXPORT_DIR", str(INSTANCE / "exports"))
        # disk (EXPORT_DIR, one host) or database (any API host serves any file).
        self.EXPORT_STORAGE = _env("EXPORT_STORAGE", "disk")
        self.EXPORT_RATE_LIMIT = _int("EXPORT_RATE_LIMIT", 10)
        self.EXPORT_RATE_WINDOW = _int("EXPORT_RATE_WINDOW", 3600)
        self.BULK_EXPORT_TTL = _int("BULK_EXPORT_TTL", 6 * 3600)
        self.BULK_EXPORT_RETRY_AFTER = _int("BULK_EXPORT_RETRY_AFTER", 5)
        self.BULK_EXPORT_POLL_INTERVAL = _int("BULK_EXPORT_POLL_INTERVAL", 5)
        # SMART Backend Services (docs/fhir.md): access token lifetime and allowed clock skew.
        self.SMART_TOKEN_TTL = _int("SMART_TOKEN_TTL", 300)
        self.SMART_MAX_CLOCK_SKEW = _int("SMART_MAX_CLOCK_SKEW", 60)

    def _push_settings(self) -> None:
        """Push providers (docs/push.md). A provider is on when its key setting is filled in."""
        self.PUSH_TIMEOUT = float(_env("PUSH_TIMEOUT", "5") or 5)
        # Seconds after its due time a reminder push is stale: providers drop it after that.
        self.PUSH_TTL = _int("PUSH_TTL", 1800)
        # FCM HTTP v1: the service-account JSON itself, or the path of its file.
        self.FCM_SERVICE_ACCOUNT = _env("FCM_SERVICE_ACCOUNT")
        self.FCM_BASE_URL = _env("FCM_BASE_URL", "https://fcm.googleapis.com")
        self.FCM_TIMEOUT = float(_env("FCM_TIMEOUT") or self.PUSH_TIMEOUT)
        # Web Push: VAPID key pair (the private key, PEM or base64url; the public one is derived).
        self.VAPID_PRIVATE_KEY = _env("VAPID_PRIVATE_KEY")
        self.VAPID_SUBJECT = _env("VAPID_SUBJECT")
        self.WEBPUSH_ENDPOINT_ORIGINS = (_env("WEBPUSH_ENDPOINT_ORIGINS") or "").split() or list(
            DEFAULT_WEBPUSH_ORIGINS
        )
        self.WEBPUSH_TIMEOUT = float(_env("WEBPUSH_TIMEOUT") or self.PUSH_TIMEOUT)
        # APNs direct (token auth with a .p8 key): the PEM itself or the path of the .p8 file.
        self.APNS_KEY = _env("APNS_KEY")
        self.APNS_KEY_ID = _env("APNS_KEY_ID")
        self.APNS_TEAM_ID = _env("APNS_TEAM_ID")
        self.APNS_TOPIC = _env("APNS_TOPIC")  # the app's bundle id
        self.APNS_BASE_URL = _env("APNS_BASE_URL", "https://api.push.apple.com")
        self.APNS_TIMEOUT = float(_env("APNS_TIMEOUT") or self.PUSH_TIMEOUT)
        self.PUSH_IOS_PROVIDER = _env("PUSH_IOS_PROVIDER")  # fcm | apns; unset: apns if APNS_KEY

    def as_flask(self) -> dict[str, object]:
        return {k: v for k, v in vars(self).items() if k.isupper()}
