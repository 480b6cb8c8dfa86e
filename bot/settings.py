"""One Settings object, read from the environment once and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
