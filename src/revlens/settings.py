"""Settings: one registry of every knob, its default, its environment variable and its meaning.

`revlens serve --help` and docs/configuration.md are generated from the same registry, so a setting
is documented the moment it exists.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

from revlens.malloc import Allocator

DEFAULT_DATA_DIR = "./revlens-data"
ENV_DATA_DIR = "REVLENS_DATA_DIR"


class Settings(BaseModel):
    """How one revlens process runs."""

    data_dir: Path = Field(default=Path(DEFAULT_DATA_DIR), description="Folder holding the database and delivery log.")
    host: str = Field(default="127.0.0.1", description="Address `revlens serve` listens on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port `revlens serve` listens on.")
    max_body_bytes: int = Field(default=1024 * 1024, description="Largest webhook body accepted (413 above).")
    signature_tolerance: int = Field(default=300, description="Oldest Stripe-Signature timestamp accepted, seconds.")
    admin_token: str | None = Field(
        default=None, description="Admin API token; default: the one in <data_dir>/admin_token, created on first start."
    )
    log_level: str = Field(default="info", description="Log level of the server.")
    store_memory_limit: str = Field(
        default="1GB",
        description="Most memory DuckDB may use for caching and queries in `revlens serve` (e.g. 512MB, 4GB).",
    )
    allocator: Allocator = Field(
        default="auto",
        description="C allocator of `revlens serve`: auto (jemalloc when libjemalloc is installed, else the "
        "system's), jemalloc (refuse to start without it) or system.",
    )
    auth_failures_per_minute: int = Field(
        default=20, ge=1, description="Failed authentications from one address before it gets 429 for a minute."
    )

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from REVLENS_* environment variables, then explicit overrides (CLI options)."""
        values: dict[str, object] = {}
        for name in cls.model_fields:
            env = os.environ.get(f"REVLENS_{name.upper()}")
            if env is not None:
                values[name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "revlens.duckdb"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    @property
    def admin_token_path(self) -> Path:
        return self.data_dir / "admin_token"

    @property
    def server_file(self) -> Path:
        return self.data_dir / "server.json"
