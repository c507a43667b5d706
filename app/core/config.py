"""Settings read from the environment (prefix-free, as operators expect: DATABASE_URL, JWT_SECRET...)."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: str = Field("development", description="development | test | production")
    data_dir: Path = Path("data")
    # Any PostgreSQL server; empty: the embedded one in data_dir/pg (app.core.embedded).
    database_url: str = ""
    # A streaming replica (a read-only URL) the point-totals exports read from, keeping the primary's
    # cores for the writes; empty: the primary. Replication lag shows in the export: a write of the
    # last second or so may be missing from it.
    reports_database_url: str = ""
    jwt_secret: str = ""
    # /docs (Swagger UI, its assets served by the service): on unless in production, where it is off
    # unless set true. /metrics: open unless METRICS_TOKEN is set (then it wants that bearer token);
    # in production without a token it is off.
    api_docs: bool | None = None
    metrics_token: str = ""
    # Failures allowed before a lockout, by throttle name (app/kit/throttle.py; docs/security.md lists
    # them), e.g. THROTTLE_ATTEMPTS='{"password:account": 10}'; and argon2 checks at once per process.
    throttle_attempts: dict[str, int] = {}
    password_hashes_at_once: int = 2
    # Key for the keyed hash that lets phone numbers be matched without being stored in clear.
    phone_hash_key: str = ""
    access_token_minutes: int = 15
    refresh_token_days: int = 30
    # A refresh token sent again this soon after its rotation (the answer was lost on a bad line) gets
    # the same new pair, not a revoked family.
    refresh_grace_seconds: int = 30
    jwt_audience: str = "jianfei-api"
    jwt_issuer: str = "jianfei"

    wechat_app_id: str = "wx-demo-app"
    wechat_app_secret: str = "demo-secret"
    wechat_api_base: str = "http://127.0.0.1:8765"
    wechat_timeout_seconds: float = 5.0
    wechat_retries: int = 2
    # First pause before a retry; doubled each time (exponential backoff, with jitter).
    wechat_backoff_seconds: float = 0.2
    # The access token is renewed this long before WeChat says it expires.
    wechat_token_margin_seconds: int = 300

    # Subscribe-message templates (订阅消息模板 id from the mini-program's console), one per reminder.
    wechat_template_recycling_day: str = "tmpl-recycling-day"
    wechat_template_compost_ready: str = "tmpl-compost-ready"
    # Reminders: a send claimed by an instance that then died is given up after the lease.
    reminder_lease_seconds: int = 300
    reminder_max_attempts: int = 4
    # Pause before a job run tries a transiently failed reminder again; doubled each attempt.
    reminder_retry_seconds: int = 60
    # Harvest claims older than this are not reminded about (a resident subscribing today is not told
    # about last year's compost).
    reminder_harvest_days: int = 14
    # Local hours in which reminders are sent, "first-end" (end excluded); "0-24" for any time.
    reminder_hours: str = Field("8-21", pattern=r"^([01]?\d|2[0-4])-([01]?\d|2[0-4])$")

    # Scheduled jobs (app.jobs): run by the service itself, every worker of every instance checking
    # every JOBS_TICK_SECONDS which are due (each slot runs once). Off: run `jianfei jobs run --loop`.
    jobs_in_service: bool = True
    jobs_tick_seconds: float = Field(30.0, gt=0)

    # Request bodies: JSON and other bodies, and multipart uploads (roster files up to 20 MiB).
    max_body_bytes: int = 1024 * 1024
    max_upload_bytes: int = 21 * 1024 * 1024

    # Connections per app process. The sync pool serves the routes that run in worker threads:
    # DB_POOL_SIZE kept open, up to DB_POOL_OVERFLOW more under load. The asyncio pool of the hot paths
    # (the bin-side scans, the revoked-token list) holds up to ASYNC_POOL_SIZE per event loop. A request
    # that finds every connection of its pool in use waits DB_POOL_WAIT_SECONDS, then is answered 503
    # with Retry-After (it used to wait 30 s and get a 500; a client retrying on time-outs piled on).
    db_pool_size: int = Field(10, ge=1)
    db_pool_overflow: int = Field(20, ge=0)
    async_pool_size: int = Field(10, ge=1)
    db_pool_wait_seconds: float = Field(2.0, gt=0)
    # A new connection gives up after this long (libpq's connect_timeout, 2 at least): a database host
    # that does not answer is a quick 503, not a request that hangs.
    db_connect_timeout_seconds: int = Field(3, ge=2)
    # Statements a process runs at once for the bin-side scans; scans arriving meanwhile share the next
    # one (app.checkins.writer). 1 coalesces the most and cost the least CPU per scan in the ingest
    # benchmark (bench/RESULTS.md); more lets a scan start while another statement is still running.
    checkin_statements: int = Field(1, ge=1, le=8)

    # Backups (app.backup): the `backup` job dumps the database daily with pg_dump into BACKUP_DIR
    # (default DATA_DIR/backups) and keeps the newest BACKUP_KEEP. BACKUP_ENABLED unset: on for the
    # embedded database (a committee's one machine has no other copy), off with DATABASE_URL (a managed
    # server has base backups and WAL archiving, docs/operations.md); true or false to decide.
    # PG_BIN_DIR: where pg_dump and pg_restore are, when the embedded wheel's and PATH's do not fit.
    backup_enabled: bool | None = None
    backup_dir: str = ""
    backup_keep: int = Field(7, ge=1)
    pg_bin_dir: str = ""

    timezone: str = "Asia/Shanghai"
    seed_demo: bool = True

    # Door-plate labels embed this TrueType/TrueType-collection font (Debian: fonts-wqy-microhei) so
    # the PDF looks the same on every viewer; when the file is missing they fall back to the CID font
    # STSong-Light, which the viewer must supply. `label_font_index`: the face inside a .ttc.
    label_font_path: str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
    label_font_index: int = 0
    log_level: str = "INFO"
    # FastAPI's own OpenTelemetry instrumentation (traces, metrics and logs to the process's configured
    # providers), for an operator who sets those up. Off by default: the service's own are the Prometheus
    # /metrics and the JSON request log, and the check for configured providers ran on every request.
    opentelemetry: bool = False

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def backups_on(self) -> bool:
        return self.backup_enabled if self.backup_enabled is not None else not self.database_url

    @property
    def docs_enabled(self) -> bool:
        return self.api_docs if self.api_docs is not None else not self.is_production

    def resolved_database_url(self) -> str:
        """DATABASE_URL, else the embedded PostgreSQL's in the data folder (app.core.embedded), which
        the `jianfei` command starts."""
        if self.database_url:
            return _psycopg_url(self.database_url)
        from app.core.embedded import database_url

        return _psycopg_url(database_url(self.data_dir))

    def resolved_reports_database_url(self) -> str | None:
        """The replica's URL for exports, None when they read the primary."""
        return _psycopg_url(self.reports_database_url) if self.reports_database_url else None

    def _kept_secret(self, name: str) -> str:
        """A development secret generated once and kept in the data folder."""
        path = self.data_dir / name
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        path.write_text(value)
        path.chmod(0o600)
        return value

    def resolved_jwt_secret(self) -> str:
        if self.jwt_secret:
            return self.jwt_secret
        if self.is_production:
            raise RuntimeError("JWT_SECRET must be set in production")
        return self._kept_secret("jwt_secret")

    def resolved_phone_hash_key(self) -> str:
        if self.phone_hash_key:
            return self.phone_hash_key
        if self.is_production:
            raise RuntimeError("PHONE_HASH_KEY must be set in production")
        return self._kept_secret("phone_hash_key")


@lru_cache
def get_settings() -> Settings:
    return Settings()


DEV_WECHAT = {"wechat_app_id": "wx-demo-app", "wechat_app_secret": "demo-secret"}


def check_production_settings(settings: Settings) -> None:
    """Refuse to start in production without the secrets that must not be generated, or with the
    development WeChat settings (the fake server's address, the demo app and secret)."""
    settings.resolved_jwt_secret()
    settings.resolved_phone_hash_key()
    if not settings.is_production:
        return
    from urllib.parse import urlsplit

    host = urlsplit(settings.wechat_api_base).hostname or ""
    if any(getattr(settings, k) == v for k, v in DEV_WECHAT.items()) or host in ("127.0.0.1", "localhost", "::1"):
        raise RuntimeError(
            "WECHAT_APP_ID, WECHAT_APP_SECRET and WECHAT_API_BASE must be set in production "
            "(the development defaults point at the fake WeChat server)"
        )


def _psycopg_url(url: str) -> str:
    """Operators paste postgres:// or postgresql:// URLs; we speak psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url
