"""One Settings object, read from the environment once and passed down."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.core.deadlines import Policy
from bot.core.quiet import parse_hours
from bot.core.worktime import parse_days
from bot.redis_clients import parse_sentinel
from bot.render import local_zone


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
        description="Redis to use (redis://, rediss:// for TLS, redis+sentinel://HOST:PORT,.../"
        "SERVICE for Sentinel); unset: an embedded redis-server in the data dir.",
    )
    queue: str = Field(default="lianhu", description="Name of the rq queue for deadline jobs.")
    deadline_scale: float = Field(
        default=1.0,
        gt=0,
        description="Factor applied to every deadline (0.001 turns hours into seconds).",
    )
    deadline_floor: float = Field(
        default=30.0,
        ge=0,
        description="Shortest a shrunk deadline may be, in seconds, so a person can act in time "
        "(only when LIANHU_DEADLINE_SCALE < 1).",
    )
    digest_at: str = Field(
        default="08:30",
        description="Local time (Asia/Shanghai, HH:MM) of the daily list of open tickets sent "
        "to each group that owes work; empty: no digest.",
    )
    classifier: Literal["model", "tfidf", "rules"] = Field(
        default="model",
        description="What classifies reports: the learned model with sentence embeddings "
        "(trained in the background into the data dir), a TF-IDF-only model, or the rules alone.",
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
    replies_per_person: int = Field(
        default=5,
        gt=0,
        description="Answers to one person's questions per minute; past it, one 'slow down' "
        "notice and silence until the minute is over (reports still open tickets).",
    )
    retention_days: int = Field(
        default=365,
        ge=0,
        description="Days a closed or dismissed ticket keeps its reporters' texts, names and "
        "accounts; then the worker's sweeper erases them (0: kept for ever).",
    )
    archive_days: int = Field(
        default=90,
        ge=0,
        description="Days a closed or dismissed ticket stays in Redis; then the worker's "
        "sweeper moves it to the archive files (0: kept in Redis for ever).",
    )
    archive_dir: Path | None = Field(
        default=None,
        description="Where archived tickets are written (gzip'd JSON lines per month); "
        "unset: 'archive' in the data dir. Every worker must see the same folder.",
    )
    outbox_backlog_alert: int = Field(
        default=10_000,
        gt=0,
        description="Undelivered messages in a platform's outbox before an error is logged "
        "(once each time the backlog grows past it).",
    )
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Host names the web app answers to besides the loopback names and the "
        "address it listens on, comma-separated (the public name behind a TLS proxy).",
    )
    web_url: str | None = Field(
        default=None,
        description="Public address of the web console (https://console.example.org): the bot "
        "answers /web with a one-time sign-in link there; unset: /web says there is none.",
    )
    web_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs the console's session cookies; unset: one made at random "
        "and kept in Redis.",
    )
    telegram_limit_scale: float = Field(
        default=1.0,
        gt=0,
        description="Factor applied to the periods of Telegram's rate limits (tests only).",
    )

    # -- WeCom (企业微信) intelligent robot: ``lianhu run --platform wecom`` ---------------------
    wecom_token: SecretStr | None = Field(
        default=None, description="Token of the robot's API mode (never printed)."
    )
    wecom_aes_key: SecretStr | None = Field(
        default=None, description="EncodingAESKey of the robot's API mode, 43 characters."
    )
    wecom_bot_id: str | None = Field(
        default=None, description="The robot's aibotid; callbacks of other robots are refused."
    )
    wecom_bot_name: str = Field(
        default="", description="The robot's name, cut from @-mentions (default: the first one)."
    )
    wecom_base_url: str = Field(
        default="https://qyapi.weixin.qq.com",
        description="WeCom API root for group robot webhooks and response_url (tests).",
    )
    wecom_webhooks: Path | None = Field(
        default=None, description="YAML file of group robot webhook keys per WeCom group chat."
    )
    wecom_replay_window: int = Field(
        default=300, ge=10, le=3600, description="Seconds a callback's timestamp may be off."
    )
    wecom_per_minute: int = Field(
        default=20, ge=1, le=20, description="Pushes a minute per group robot (WeCom: 20)."
    )

    work_hours: str = Field(
        default="",
        description="Working hours HH:MM-HH:MM (local time): outside them, cards of normal "
        "and low severity wait and come as one summary when the day starts, and categories "
        "with clock: working count their deadlines in them; empty: none.",
    )
    work_days: str = Field(
        default="Mon-Fri",
        description="Working days (Mon-Fri, or a list such as Mon,Tue,Wed,Thu,Fri,Sat) of the "
        "working hours; public holidays are not known.",
    )

    # -- other ways in: alert webhooks and Open311 (served by the web app) -----------------
    alerts_file: Path | None = Field(
        default=None,
        description="YAML mapping of alert labels to a node and a category; unset: no "
        "/hooks/alerts endpoint.",
    )
    alerts_secret: SecretStr | None = Field(
        default=None,
        description="Key of the alert webhook: an HMAC-SHA256 signature of the body, or a "
        "bearer token (Alertmanager); 16 to 256 printable characters (never printed).",
    )
    open311_clients: Path | None = Field(
        default=None,
        description="YAML file of Open311 clients and their API keys; unset: no Open311 endpoint.",
    )

    def policy(self) -> Policy:
        """Return the deadline policy these settings describe."""
        return Policy(
            scale=self.deadline_scale, floor=self.deadline_floor,
            work_hours=parse_hours(self.work_hours), work_days=parse_days(self.work_days),
            zone=local_zone(),
        )  # fmt: skip

    def secret_values(self) -> list[str]:
        """Return every secret these settings hold, for the log filter to redact."""
        secrets = (
            self.telegram_token, self.webhook_secret, self.wecom_token, self.wecom_aes_key,
            self.alerts_secret,
            self.web_secret,
        )  # fmt: skip
        values = [s.get_secret_value() for s in secrets if s]
        if self.redis_url:
            try:
                password = urlsplit(self.redis_url).password
            except ValueError:
                password = None
            if password:
                values.append(password)
            found = parse_sentinel(self.redis_url)
            if found is not None and found.sentinel_password:
                values.append(found.sentinel_password)
        return values

    @property
    def archive_folder(self) -> Path:
        """Return the folder of the archive files."""
        return self.archive_dir or self.data_dir / "archive"

    @model_validator(mode="after")
    def _archive_before_erasure(self) -> Settings:
        if 0 < self.retention_days < self.archive_days:
            raise ValueError(
                f"LIANHU_ARCHIVE_DAYS ({self.archive_days}) must not exceed "
                f"LIANHU_RETENTION_DAYS ({self.retention_days}): a ticket is archived first, "
                "and its reporters' data is erased in the archive when retention ends"
            )
        return self

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

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value:
            parse_sentinel(value)  # a Sentinel URL's mistakes are named here, at start
        return value

    @field_validator("web_url")
    @classmethod
    def _web_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError("an http:// or https:// address, such as https://console.example.org")
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

    @field_validator("wecom_aes_key")
    @classmethod
    def _aes_key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9+/]{43}", value.get_secret_value()):
            raise ValueError("43 characters of A-Z, a-z, 0-9, + and / (the EncodingAESKey)")
        return value

    @field_validator("alerts_secret")
    @classmethod
    def _alerts_secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[\x21-\x7e]{16,256}", value.get_secret_value()):
            raise ValueError("16 to 256 printable ASCII characters, no spaces")
        return value

    @field_validator("work_hours")
    @classmethod
    def _work_hours_shape(cls, value: str) -> str:
        parse_hours(value)  # raises ValueError with the reason
        return value

    @field_validator("work_days")
    @classmethod
    def _work_days_shape(cls, value: str) -> str:
        parse_days(value)  # raises ValueError with the reason
        return value
