"""Settings: one TOML file plus ``RELAY_*`` environment variables.

Unknown keys and bad values must stop start-up with a message naming the key, because a
typo in a mail relay's configuration silently changes who may send mail where.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from relay.core.errors import SettingsError as SettingsError

# one duration grammar for both loaders (relay.settings_lite imports no pydantic)
from relay.settings_lite import parse_duration as parse_duration

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def parse_hostport(value: str, default_port: int) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` too); raises ValueError with a plain reason."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.lstrip(":") or str(default_port)
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, str(default_port)
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"not a host:port: {value!r}")
    return host, int(port)


def require_port(value: str) -> str:
    """A listen address must name its port: ``localhost`` alone would silently mean 25
    (or whatever default), which is never what an operator typing it meant."""
    v = value.strip()
    if v.startswith("["):
        has_port = bool(v.partition("]")[2].lstrip(":"))
    else:
        has_port = v.count(":") == 1 and bool(v.rpartition(":")[2])
    if not has_port:
        raise ValueError(f"needs host:port, e.g. 127.0.0.1:2525 (got {value!r})")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RelaySection(_Section):
    domain: str = "relay.example"
    marketplace: str = "Marketplace"
    hostname: str = Field(default="", description="SMTP banner / EHLO name; defaults to domain")
    max_hops: int = Field(default=30, ge=5, le=100)
    alias_ttl_days: int = Field(default=0, ge=0, description="0: aliases live until closed")
    shutdown_grace: Duration = Field(
        default=timedelta(seconds=30),
        description="on SIGTERM: time open SMTP transactions and deliveries get to finish",
    )
    postmaster: str = Field(
        default="",
        description="where postmaster@ and abuse@ the relay domain go; empty: archived only",
    )

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        v = v.strip().lower().rstrip(".")
        if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", v):
            raise ValueError(f"not a domain name: {v!r}")
        return v

    @model_validator(mode="after")
    def _postmaster(self) -> RelaySection:
        """Ops mail must leave the relay: an address on our own domain would loop, or
        reach a party through an alias."""
        local, at, domain = self.postmaster.strip().rpartition("@")
        if self.postmaster and (not at or not local or not domain or " " in self.postmaster):
            raise ValueError(f"relay.postmaster is not an address: {self.postmaster!r}")
        if self.postmaster and domain.lower().rstrip(".") == self.domain:
            raise ValueError("relay.postmaster must be outside the relay domain")
        return self

    @property
    def helo_name(self) -> str:
        return self.hostname or self.domain


class SmtpSection(_Section):
    listen: str = "127.0.0.1:2525"
    max_message_size: int = Field(default=40 * 1024 * 1024, ge=1024)
    max_recipients: int = Field(default=20, ge=1)
    # Slow and greedy clients (relay.smtp.gate; Postfix's stress-dependent timeouts and
    # smtpd_min_data_rate are the models). An idle session costs one descriptor and ~20 KB.
    max_connections: int = Field(default=2000, ge=1, description="at the cap: evict longest idle")
    max_connections_per_client: int = Field(
        default=50, ge=1, description="per client address (IPv6: per /64); above it 421 4.7.0"
    )
    max_connection_rate_per_client: int = Field(
        default=120,
        ge=0,
        description="connections a minute per client address; above 421 4.7.0, twice above"
        " closed unanswered; 0: no limit (Postfix's smtpd_client_connection_rate_limit)",
    )
    connection_rate_exceptions: list[str] = Field(
        default_factory=lambda: ["127.0.0.1/32", "::1/128"],
        description="networks the connection rate is not counted for (the host itself,"
        " like Postfix's mynetworks_style = host); trusted front ends are never counted",
    )
    timeout: Duration = Field(
        default=timedelta(minutes=5), description="idle limit: since the last productive command"
    )
    stress_threshold: float = Field(
        default=0.5, gt=0, le=1, description="open/max_connections from which stress applies"
    )
    stress_timeout: Duration = timedelta(seconds=10)
    min_data_rate: int = Field(default=500, ge=0, description="bytes/s in DATA; 0: no minimum")
    data_rate_grace: Duration = timedelta(seconds=10)
    data_rate_window: Duration = timedelta(seconds=30)
    hard_error_limit: int = Field(
        default=20, ge=1, description="error replies in a session before 421 and close"
    )
    junk_command_limit: int = Field(
        default=100, ge=0, description="NOOP/RSET/VRFY/EXPN/HELP before each counts as an error"
    )
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Trusted front ends. PROXY protocol (v1/v2) from a load balancer: the header is
    # required on every connection and honoured only from proxy_networks; others are
    # closed unanswered. XFORWARD from Postfix (smtpd_proxy_filter): accepted from
    # proxy_networks only.
    proxy_protocol: bool = False
    xforward: bool = False
    proxy_networks: list[str] = Field(default_factory=list)
    proxy_timeout: Duration = timedelta(seconds=5)
    # Both cores for the SMTP side: ``relay serve`` runs ``acceptors - 1`` more SMTP-only
    # processes on the same port (SO_REUSEPORT: the kernel spreads connections over
    # them). Each has its own group committer and content workers; the database's write
    # lock (SQLite) or the chain lock (PostgreSQL) keeps one writer of the hash chain.
    acceptors: int = Field(
        default=1, ge=1, le=16, description="SMTP processes on smtp.listen (SO_REUSEPORT)"
    )
    reuse_port: bool = Field(
        default=False,
        description="bind smtp.listen with SO_REUSEPORT (set for you when acceptors > 1)",
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_hostport(require_port(v), 25)
        return v

    @field_validator("proxy_networks", "connection_rate_exceptions")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for net in v:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"not a network: {net!r} (use e.g. 10.0.0.0/24)") from None
        return v

    @model_validator(mode="after")
    def _proxy_needs_networks(self) -> SmtpSection:
        for flag in ("proxy_protocol", "xforward"):
            if getattr(self, flag) and not self.proxy_networks:
                raise ValueError(
                    f"smtp.{flag} needs smtp.proxy_networks (the front ends' addresses)"
                )
        return self

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_hostport(self.listen, 25)


class DatabaseSection(_Section):
    url: str = "sqlite+aiosqlite:///var/relay.sqlite3"
    pool_size: int = Field(default=10, ge=1)
    group_commit_max: int = Field(default=64, ge=1, le=1000)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not (v.startswith("sqlite+aiosqlite://") or v.startswith("postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///PATH or postgresql+asyncpg://...")
        return v


class DeliverySection(_Section):
    smarthost: str = Field(default="", description="host:port; empty for direct MX delivery")
    smarthost_tls: Literal["none", "starttls", "implicit"] = "none"
    smarthost_username: str = ""
    smarthost_password: str = ""
    mx_port: int = Field(default=25, ge=1, le=65535)
    retry: list[Duration] = Field(
        default_factory=lambda: [timedelta(minutes=m) for m in (5, 10, 20, 40, 60)]
    )
    give_up_after: Duration = timedelta(days=5)
    concurrency: int = Field(default=20, ge=1)
    batch: int = Field(default=50, ge=1)
    timeout: Duration = timedelta(seconds=60)
    poll_interval: Duration = timedelta(seconds=1)
    # In-flight sends renew their lease, so it only bounds how long a dead worker's rows
    # wait before another worker takes them over.
    claim_lease: Duration = timedelta(seconds=60)
    # Outcomes the database could not take yet (it was down) wait here, durably, for it
    # to come back, also across a restart on the same host. None: beside the SQLite
    # file, else ./delivery-journal (the state directory in the shipped units).
    journal_dir: Path | None = None
    processes: int = Field(
        default=0,
        ge=0,
        le=16,
        description="delivery workers `relay serve` runs as child processes; 0: in-process",
    )

    @field_validator("smarthost")
    @classmethod
    def _smarthost(cls, v: str) -> str:
        if v:
            parse_hostport(v, 25)
        return v

    @field_validator("retry")
    @classmethod
    def _retry(cls, v: list[timedelta]) -> list[timedelta]:
        if not v:
            raise ValueError("the retry schedule needs at least one interval")
        return v


class PolicySection(_Section):
    file: Path | None = Field(default=None, description="policy TOML; None: the shipped default")
    enabled: bool = True
    workers: int = Field(
        default=2,
        ge=0,
        description="content worker processes (policy, intake, rewrite; the memory budget"
        " holds only there); 0: threads in the relay process, for development",
    )
    hold_alert_after: Duration = Field(
        default=timedelta(hours=24),
        description="held messages older than this are counted by relay_holds_overdue",
    )


class MessageSection(_Section):
    """Per-message budgets and structural limits (relay.mail.limits, relay.policy_pool).

    A message over any of them is refused permanently (554 5.6.0 / 552 5.3.4) with the
    setting named: the message is at fault, a retry would meet the same limit.
    """

    cpu_budget: Duration = Field(
        default=timedelta(seconds=2), description="CPU time one message may cost to check"
    )
    memory_budget_mb: int = Field(
        default=256, ge=32, description="memory one message may use while checked"
    )
    max_parts: int = Field(default=500, ge=1)
    max_depth: int = Field(default=12, ge=1, description="nesting of multiparts and messages")
    max_header_fields: int = Field(default=500, ge=10, description="per header section")
    max_header_line_bytes: int = Field(default=4096, ge=998)
    max_header_field_bytes: int = Field(default=65536, ge=998, description="unfolded")
    max_header_bytes: int = Field(default=262144, ge=4096, description="per header section")
    max_encoded_words_per_field: int = Field(default=200, ge=1)
    max_encoded_words: int = Field(default=2000, ge=1)
    max_mime_params_per_field: int = Field(default=32, ge=4)
    max_mime_params: int = Field(default=4000, ge=4)
    max_image_pixels: int = Field(
        default=64_000_000, ge=1_000_000, description="declared width x height of one image"
    )
    workers: int = Field(
        default=2, ge=1, le=64, description="threads that check messages off the event loop"
    )

    def structure(self) -> Any:
        """The limits as relay.mail.limits reads them."""
        from relay.mail.limits import StructureLimits

        return StructureLimits(
            max_parts=self.max_parts,
            max_depth=self.max_depth,
            max_header_fields=self.max_header_fields,
            max_header_line_bytes=self.max_header_line_bytes,
            max_header_field_bytes=self.max_header_field_bytes,
            max_header_bytes=self.max_header_bytes,
            max_encoded_words_per_field=self.max_encoded_words_per_field,
            max_encoded_words=self.max_encoded_words,
            max_mime_params_per_field=self.max_mime_params_per_field,
            max_mime_params=self.max_mime_params,
        )


class ArchiveSection(_Section):
    refused_keep: int = Field(
        default=65536,
        ge=0,
        description="body bytes kept of a message refused before its sender was proven a party",
    )
    search_timeout: Duration = Field(
        default=timedelta(seconds=10),
        description="a search running longer is cancelled by the database and answered "
        "with an error (API 503, CLI exit 1) instead of holding a connection; 0 = no limit",
    )

    @field_validator("search_timeout")
    @classmethod
    def _not_negative(cls, v: timedelta) -> timedelta:
        if v.total_seconds() < 0:
            raise ValueError("must not be negative (0 turns the limit off)")
        return v


class LimitsSection(_Section):
    """Abuse controls (relay.ratelimits): counters shared by every relay on one database.

    ``0`` turns a limit off. The defaults are far above what a party meets in normal use
    (a busy seller answers a few hundred buyers a day; a big mail provider's outbound host
    carries many parties), so only a flood trips them.
    Windows are fixed and aligned to the epoch (a minute, an hour, a UTC day).
    """

    per_party_hour: int = Field(default=1000, ge=0, description="messages per sender party")
    per_party_day: int = Field(default=10000, ge=0, description="messages per sender party")
    per_order_day: int = Field(default=50, ge=0, description="messages per order, both ways")
    per_ip_minute: int = Field(default=3000, ge=0, description="messages per client address")
    proactive_per_order: int = Field(
        default=10, ge=0, description="seller messages per order that answer no buyer message"
    )
    stranger_per_alias_hour: int = Field(
        default=20, ge=0,
        description="refused strangers per alias; past it unaligned senders get 450 at RCPT",
    )
    archive_bytes_per_party_day: int = Field(
        default=2 * 1024**3, ge=0, description="archived bytes per sender party and UTC day"
    )
    reply_window: Duration = Field(
        default=timedelta(days=7),
        description="a seller message answering a buyer message this recent is a reply",
    )


class AuthSection(_Section):
    mode: Literal["enforce", "report", "off"] = "enforce"


class DnsSection(_Section):
    nameservers: list[str] = Field(default_factory=list)
    port: int = Field(default=53, ge=1, le=65535)
    timeout: Duration = timedelta(seconds=5)


class DkimSection(_Section):
    enabled: bool | None = Field(
        default=None,
        description="false: deliver unsigned on purpose (start-up otherwise refuses that "
        "under auth.mode = enforce); unset: sign when key_file is set",
    )
    selector: str = "s1"
    key_file: Path | None = None
    algorithm: Literal["rsa-sha256", "ed25519-sha256"] = "rsa-sha256"


class BounceSection(_Section):
    secret: str = Field(default="", description="HMAC key for signed return paths")
    local_prefix: str = "bounce"


class LogSection(_Section):
    format: Literal["json", "console", "auto"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"
    hash_key: str = Field(default="", description="key for hashing addresses in logs")


class ApiSection(_Section):
    listen: str = "127.0.0.1:8025"
    marketplace_tokens: list[str] = Field(default_factory=list)
    ops_tokens: list[str] = Field(default_factory=list)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_hostport(require_port(v), 8025)
        return v


class MetricsSection(_Section):
    listen: str = Field(default="", description="host:port for /metrics, /healthz, /readyz")
    cert_min_days: int = Field(
        default=14, ge=0, description="/readyz fails when the TLS certificate expires sooner"
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        if v:
            parse_hostport(require_port(v), 9125)
        return v

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_hostport(self.listen, 9125)


class Settings(BaseSettings):
    """The whole configuration. Sections are frozen; pass the object, never mutate it."""

    model_config = SettingsConfigDict(
        env_prefix="RELAY_", env_nested_delimiter="__", extra="forbid", frozen=True
    )
    _toml_file: ClassVar[Path | None] = None

    relay: RelaySection = RelaySection()
    smtp: SmtpSection = SmtpSection()
    database: DatabaseSection = DatabaseSection()
    delivery: DeliverySection = DeliverySection()
    policy: PolicySection = PolicySection()
    message: MessageSection = MessageSection()
    auth: AuthSection = AuthSection()
    dns: DnsSection = DnsSection()
    dkim: DkimSection = DkimSection()
    bounce: BounceSection = BounceSection()
    log: LogSection = LogSection()
    api: ApiSection = ApiSection()
    metrics: MetricsSection = MetricsSection()
    archive: ArchiveSection = ArchiveSection()
    limits: LimitsSection = LimitsSection()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls._toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_file))
        return tuple(sources)


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown setting {key!r}")
        else:
            lines.append(f"setting {key!r}: {e['msg']}")
    return "; ".join(lines)


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Load TOML (if given) + environment; raise SettingsError naming the bad key."""
    toml_path = Path(path) if path else None
    if toml_path is not None and not toml_path.is_file():
        raise SettingsError(f"settings file not found: {toml_path}")

    class _Loaded(Settings):
        _toml_file: ClassVar[Path | None] = toml_path

    try:
        loaded = _Loaded(**overrides)
    except ValidationError as err:
        raise SettingsError(_format_errors(err)) from None
    except ValueError as err:  # TOML syntax errors surface as ValueError subclasses
        raise SettingsError(f"cannot read {toml_path}: {err}") from None
    return Settings.model_validate(loaded.model_dump())
