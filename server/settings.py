"""Configuration from the environment and `.env` (every field is listed in `.env.example`)."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Annotated, Literal

from limits import parse_many
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from server.timezones import zone_name

# Words that mark a secret copied from an example, whatever its length; a random secret of
# 32+ characters contains none of them but by a one-in-a-million chance.
PLACEHOLDER = re.compile(
    r"your|change.?me|placeholder|example|replace|dummy|sample|secret.?key|x{4}|0{8}|here",
    re.IGNORECASE,
)
MIN_SECRET_LENGTH = 32


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    data_dir: Path = Path(".todo-chat")
    database_url: str = ""
    db_pool_size: int = Field(default=10, ge=1, le=200)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: Literal["text", "json"] = "text"
    # On SIGTERM: how long requests in flight may take to finish before they are cut.
    shutdown_grace_seconds: int = Field(default=30, ge=0, le=3600)
    # /metrics (Prometheus): on by default; with a token, only with it as a bearer token.
    metrics_enabled: bool = True
    metrics_token: str = ""

    # Auth
    better_auth_secret: str = ""
    jwks_url: str = ""
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=600)

    # HTTP
    cors_origins: Annotated[list[str], NoDecode] = []
    public_url: str = "http://127.0.0.1:8000"
    mcp_allowed_hosts: Annotated[list[str], NoDecode] = [
        "127.0.0.1:*",
        "localhost:*",
        "[::1]:*",
    ]
    default_timezone: str = "UTC"
    # The chat page at /: on in development, off elsewhere unless set.
    web_ui: bool | None = None

    # Agent
    openai_api_key: str = ""
    openai_base_url: str = ""
    agent_model: str = "gpt-5-mini"
    agent_timeout: float = Field(default=60.0, gt=0)
    agent_tracing: bool = False
    chat_history_messages: int = Field(default=20, ge=0, le=500)

    # Reminders and task events
    background_jobs: bool = True
    events_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    reminder_lease_seconds: float = Field(default=30.0, gt=0, le=3600)
    events_webhook_url: str = ""
    events_webhook_secret: str = ""
    # Events older than this are deleted (once delivered to the webhook, if there is one).
    events_retention_days: float = Field(default=30.0, gt=0, le=3650)

    # Per-user caps (0: none)
    max_tasks_per_user: int = Field(default=10_000, ge=0)
    max_conversations_per_user: int = Field(default=1_000, ge=0)

    # Rate limits (limits-library syntax, several separated by ";")
    rate_limit_enabled: bool = True
    rate_limit_storage_uri: str = "memory://"
    rate_limit_chat: str = "20/minute;500/day"
    rate_limit_rest: str = "120/minute"
    rate_limit_mcp: str = "120/minute"
    rate_limit_anonymous: str = "30/minute"

    _split = field_validator("cors_origins", "mcp_allowed_hosts", mode="before")(_split_csv)

    @field_validator("web_ui", mode="before")
    @classmethod
    def _unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("events_webhook_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _webhook_secret(self) -> Settings:
        if self.events_webhook_url and not self.events_webhook_secret.startswith("whsec_"):
            raise ValueError(
                "EVENTS_WEBHOOK_URL needs EVENTS_WEBHOOK_SECRET (whsec_ and base64, as the "
                "Standard Webhooks libraries make it)"
            )
        return self

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return zone_name(value)

    @field_validator("rate_limit_chat", "rate_limit_rest", "rate_limit_mcp", "rate_limit_anonymous")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        # A limit SlowAPI cannot read would turn rate limiting off, with an error per request.
        try:
            parse_many(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a rate limit: use e.g. 20/minute, or several joined by ';' "
                "(20/minute;500/day)"
            ) from None
        return value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'todo-chat.db'}"
        return self

    @property
    def agent_provider(self) -> Literal["openai", "openai-compatible", "offline"]:
        if self.openai_base_url:
            return "openai-compatible"
        if self.openai_api_key:
            return "openai"
        return "offline"

    @property
    def web_ui_enabled(self) -> bool:
        return self.web_ui if self.web_ui is not None else self.environment == "development"

    def check_production(self) -> None:
        """Refuse to run in production on a missing or placeholder secret."""
        if self.environment != "production":
            return
        secret = self.better_auth_secret
        if not self.jwks_url and (
            PLACEHOLDER.search(secret) or len(secret.strip()) < MIN_SECRET_LENGTH
        ):
            raise SystemExit(
                "ENVIRONMENT=production needs BETTER_AUTH_SECRET (at least "
                f"{MIN_SECRET_LENGTH} characters, not a placeholder) or JWKS_URL."
            )

    def with_dev_secret(self) -> Settings:
        """In development, make up a signing secret once and keep it in the data dir.

        Keeping it on disk means tokens issued by `todo-chat token` survive a restart.
        """
        if self.better_auth_secret or self.environment == "production":
            return self
        path = self.data_dir / "dev-secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return self.model_copy(update={"better_auth_secret": path.read_text().strip()})
