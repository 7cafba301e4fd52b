"""Process settings: where state lives and where the configuration files are.

Everything a user may want to see, back up or delete lives under one directory,
``OFFER_BANDIT_HOME`` (default ``./.offer-bandit``): the decision log, the MLflow
store, Prefect's home, the model cache and the hashing salt. The two configuration
files (the marketing-owned catalog and the service-owned policy) are found here too
(``find_config``), so every command and adapter resolves paths the same way, from any
working directory.

Every field can be set from the environment as ``OFFER_BANDIT_<FIELD>``.
"""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, field_serializer, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EXAMPLES = Path(__file__).resolve().parent / "examples"
"""The packaged example catalog and policy file (``offers.yaml``, ``policy.yaml``): what
``offer-bandit init`` writes, and the configuration of last resort. The repository's
``config/`` is a link to this directory: one copy."""
CATALOG_FILE, POLICY_FILE = "offers.yaml", "policy.yaml"
WORKDIR_CONFIG = Path("config")
"""Where a working directory keeps its configuration (the repository's layout)."""


def find_config(filename: str, home: Path) -> tuple[Path, str]:
    """Where a configuration file not named by a setting is found, and which place that is:
    ``config/<filename>`` in the working directory, else ``<home>/<filename>``, else the
    packaged example. Why this order: a directory holding its own configuration (the
    repository, a deployment's checkout) keeps using it; anywhere else a command finds the
    home's files (``offer-bandit init`` writes them there), or runs on the example
    rather than failing to read a path relative to somewhere else."""
    for path, source in ((WORKDIR_CONFIG / filename, "working directory"), (home / filename, "home")):
        if path.is_file():
            return path, source
    return EXAMPLES / filename, "packaged example"


class Settings(BaseSettings):
    """Resolved process settings; construct once per process (see ``get_settings``)."""

    model_config = SettingsConfigDict(env_prefix="OFFER_BANDIT_", extra="ignore")

    home: Path = Field(Path(".offer-bandit"), description="Directory holding all state.")
    # ``None`` only until the settings are built: unset, they are found (``find_config``).
    catalog: Path | None = Field(None, description="Marketing's offer catalog (YAML); unset: config/offers.yaml in "
                                 "the working directory, else <home>/offers.yaml, else the packaged example.")
    policy: Path | None = Field(None, description="The service's policy file (YAML); unset: found as the catalog is.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the decision log; default sqlite under home. "
        "PostgreSQL: postgresql+psycopg://user@host:5432/db",
    )
    salt: str | None = Field(
        None, exclude=True,
        description="Secret for hashing customer ids and seeding sampling. Default: "
        "generated once into <home>/salt. Replicas sharing a log must share it.",
    )
    model_path: Path | None = Field(None, description="A VW model file to serve; default: cold start.")
    model_poll_seconds: float = Field(30.0, gt=0, description="How often the service checks for a new model.")
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking and registry store; default: sqlite:///<home>/mlflow.db."
    )
    registered_model: str = Field("offer-policy", description="The registered model the flows register into.")
    model_alias: str = Field("champion", description="The registry alias the service serves (without a model_path).")
    api_keys: str | None = Field(None, exclude=True, description="Channel keys, comma separated: decide, outcomes, activate.")
    api_keys_file: Path | None = Field(None, description="File with channel keys, one per line.")
    admin_key: str | None = Field(None, exclude=True, description="Admin key: everything a channel key may, plus admin routes.")
    admin_key_file: Path | None = Field(None, description="File holding the admin key.")
    smtp_username: str | None = Field(None, description="SMTP login for notification email (the policy file's "
                                                       "notifications.smtp); with smtp_password.")
    smtp_password: str | None = Field(None, exclude=True, description="SMTP password (a secret: not in the policy file).")
    max_body_bytes: int = Field(65536, ge=1024, description="Requests with larger bodies get 413.")
    max_model_bytes: int = Field(256 * 2**20, ge=1024, description="A model upload (Personalizer's import "
                                 "model, PUT .../model) may be this large.")
    cors_origins: str | None = Field(
        None, description="Origins a browser may call the service from, comma separated "
        "(https://desk.example.com), or *; unset: none (no CORS headers).")
    config_refresh_seconds: float = Field(
        2.0, gt=0, le=3600, description="How often a replica checks for a configuration another replica published "
                                        "(POST /admin/reload on any replica reaches all within this).")
    suspension_refresh_seconds: float = Field(
        1.0, ge=0, description="How stale a replica's view of the kill switch may be (set through it: at once)."
    )
    database_pool_size: int = Field(
        8, ge=1, le=64,
        description="PostgreSQL log: the connections a replica's request path (decision reads and group commits, "
        "asynchronous) may hold at once; its other routes and background threads share as many again (at most "
        "twice this per replica).",
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="SQLite log: FULL fsyncs every commit (a logged decision survives power loss); NORMAL "
        "fsyncs only at checkpoints (it survives a crash of the service, not of the machine).",
    )

    retrain_cron: str = Field("0 2 * * *", description="When `flows serve` runs retrain (cron, in schedule_timezone).")
    monitor_cron: str = Field("0 * * * *", description="When `flows serve` runs monitor (cron).")
    tune_cron: str = Field("0 3 * * 0", description="When `flows serve` runs tune (cron).")
    purge_cron: str = Field("30 4 * * *", description="When `flows serve` runs purge (cron; retention.days).")
    working_well_cron: str = Field("0 8 * * 1", description="When `flows serve` sends the weekly working-well note (cron).")
    schedule_timezone: str = Field("UTC", description="Time zone of the flow schedules (IANA name).")

    _config_sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _find_config_files(self) -> "Settings":
        """An unset catalog or policy file is found once, here (``find_config``): every
        reader of the settings sees a path, and ``config_sources`` says where it came from."""
        for name, filename in (("catalog", CATALOG_FILE), ("policy", POLICY_FILE)):
            if getattr(self, name) is None:
                path, source = find_config(filename, self.home)
                setattr(self, name, path)
                self._config_sources[name] = source
            else:
                self._config_sources[name] = "setting"
        return self

    @property
    def config_sources(self) -> dict[str, str]:
        """Where the catalog and the policy file were found: ``setting`` (an option or
        ``OFFER_BANDIT_CATALOG``/``_POLICY``), ``working directory``, ``home`` or
        ``packaged example``."""
        return dict(self._config_sources)

    @field_serializer("database_url", "mlflow_tracking_uri")
    def _without_password(self, url: str | None) -> str | None:
        """Serialized (a flow run's parameters, a report), a URL shows no password; the
        secrets (salt, keys) are excluded altogether. The object itself keeps them."""
        return hide_password(url)

    def environment(self) -> dict[str, str]:
        """These settings as ``OFFER_BANDIT_*`` variables, paths resolved: how they reach a
        child process (the service under ``bentoml serve``, a scheduled flow run), which
        loads them again at its start. Within a process they are passed as the object."""
        out = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is not None:
                out[f"OFFER_BANDIT_{name.upper()}"] = str(value.resolve() if isinstance(value, Path) else value)
        return out

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'decisions.db').resolve()}"

    @cached_property
    def secret(self) -> str:
        """The hashing salt: from the environment, else from ``<home>/salt`` (created once)."""
        if self.salt:
            return self.salt
        path = self.home / "salt"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two processes starting together agree on one salt.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_hex(32))
        return path.read_text().strip()

    def channel_keys(self) -> frozenset[str]:
        return frozenset(_keys(self.api_keys, self.api_keys_file))

    def admin_keys(self) -> frozenset[str]:
        return frozenset(_keys(self.admin_key, self.admin_key_file))

    def cors_allowed(self) -> frozenset[str]:
        """The origins of ``cors_origins`` (``*`` stays ``*``: any origin)."""
        return frozenset(o.strip().rstrip("/") for o in (self.cors_origins or "").split(",") if o.strip())

    def smtp_login(self) -> tuple[str, str] | None:
        """The SMTP credentials for notification email, when both are set."""
        if self.smtp_username and self.smtp_password:
            return self.smtp_username, self.smtp_password
        return None

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home


# The stack's tools report usage over the network by default; every process we start
# has them off (and on an offline machine they only print errors).
TELEMETRY_OFF = {"DO_NOT_TRACK": "1", "BENTOML_DO_NOT_TRACK": "True", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                 "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_ENABLE_TELEMETRY": "false"}


def hide_password(url: str | None) -> str | None:
    """``scheme://user:***@host/db`` for a URL with a password; anything else unchanged."""
    if url is None or "://" not in url or "@" not in url.split("://", 1)[1]:
        return url
    scheme, rest = url.split("://", 1)
    userinfo, host = rest.rsplit("@", 1)
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}" if ":" in userinfo else url


def _keys(inline: str | None, path: Path | None) -> list[str]:
    """Keys from the environment value (comma separated) and/or a file (one per line, # comments)."""
    keys = [k.strip() for k in (inline or "").split(",") if k.strip()]
    if path is not None:
        for line in Path(path).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                keys.append(line)
    return keys


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (tests, CLI flags)."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
