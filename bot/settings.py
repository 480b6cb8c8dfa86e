"""One Settings object, read from the environment once and passed down."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of Lianhu; each variable has the ``LIANHU_`` prefix."""

    model_config = SettingsConfigDict(env_prefix="LIANHU_", extra="forbid", frozen=True)

    rules_dir: Path = Field(
        default=Path("routing_rules"), description="Directory of routing rule files."
    )
    org_file: Path = Field(
        default=Path("org/sample_street.yaml"),
        description="Organisation tree and roster (YAML).",
    )
    data_dir: Path = Field(
        default=Path("data"), description="Where the embedded Redis keeps its files."
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias="REDIS_URL",
        description="Redis to use; unset: an embedded redis-server in the data dir.",
    )
    queue: str = Field(default="lianhu", description="Name of the rq queue for deadline jobs.")
    deadline_scale: float = Field(
        default=1.0,
        gt=0,
        description="Factor applied to every deadline (0.001 turns hours into seconds).",
    )
    digest_at: str = Field(
        default="08:30",
        description="Local time (Asia/Shanghai, HH:MM) of the daily list of open tickets sent "
        "to each group that owes work; empty: no digest.",
    )
    telegram_token: SecretStr | None = Field(
        default=None, description="Bot token from @BotFather (never printed)."
    )
    telegram_base_url: str = Field(
        default="https://api.telegram.org",
        description="Bot API server root (tests and self-hosted Bot API servers).",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Secret token Telegram sends with each webhook call (1-256 of A-Za-z0-9_-).",
    )
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Host names the web app answers to besides the loopback names and the "
        "address it listens on, comma-separated (the public name behind a TLS proxy).",
    )
    telegram_limit_scale: float = Field(
        default=1.0,
        gt=0,
        description="Factor applied to the periods of Telegram's rate limits (tests only).",
    )

    def secret_values(self) -> list[str]:
        """Return every secret these settings hold, for the log filter to redact."""
        values = [s.get_secret_value() for s in (self.telegram_token, self.webhook_secret) if s]
        if self.redis_url:
            try:
                password = urlsplit(self.redis_url).password
            except ValueError:
                password = None
            if password:
                values.append(password)
        return values

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(h.strip() for h in value.split(",") if h.strip())
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for host in value:
            if not re.fullmatch(r"\[?[A-Za-z0-9.:_-]+\]?", host):
                raise ValueError(f"{host!r} is not a host name (no scheme, port or path)")
        return value

    @field_validator("digest_at")
    @classmethod
    def _digest_time(cls, value: str) -> str:
        if value and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError("a time as HH:MM (24-hour), such as 08:30, or empty for no digest")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(
            r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()
        ):
            raise ValueError("1 to 256 characters of A-Z, a-z, 0-9, _ and -")
        return value
