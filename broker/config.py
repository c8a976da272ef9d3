"""Typed settings read from the environment; a bad value is refused, never silently defaulted."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from broker.errors import InputError

_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
#: The provider dialects the gateway speaks, each mounted at /compat/<name>.
DIALECT_NAMES: tuple[str, ...] = ("vanuconnect", "smsapi", "vavasms", "vendel", "velstack")


def _dialects(raw: str | None) -> tuple[str, ...]:
    """DIALECTS: unset means all; empty means none; an unknown name is an error."""
    if raw is None:
        return DIALECT_NAMES
    names = tuple(dict.fromkeys(n.strip().lower() for n in raw.split(",") if n.strip()))
    unknown = [n for n in names if n not in DIALECT_NAMES]
    if unknown:
        raise InputError(
            f"DIALECTS: unknown {', '.join(unknown)}; choose from {', '.join(DIALECT_NAMES)}",
            field="DIALECTS",
        )
    return names


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InputError(f"{name} must be an integer, got {raw!r}", field=name) from exc
    if not lo <= value <= hi:
        raise InputError(f"{name} must be between {lo} and {hi}, got {value}", field=name)
    return value


def _seconds(env: Mapping[str, str], name: str, default: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise InputError(f"{name} must be a number of seconds, got {raw!r}", field=name) from exc
    if not 0 < value <= hi:
        raise InputError(f"{name} must be in (0, {hi:g}] seconds, got {raw}", field=name)
    return value


def _delays(env: Mapping[str, str], name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    raw = env.get(name)
    if not raw:
        return default
    try:
        values = tuple(float(part) for part in raw.split(","))
    except ValueError as exc:
        raise InputError(
            f"{name} must be comma-separated seconds, got {raw!r}", field=name
        ) from exc
    if not values or any(v <= 0 or v > 86400 for v in values):
        raise InputError(f"{name} values must be in (0, 86400] seconds", field=name)
    return values


@dataclass(frozen=True)
class Settings:
    database_url: str = "postgresql://postgres@127.0.0.1:5432/smsbroker"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    #: Where every API process keeps the shared rate-limit state (nothing that must not be lost).
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Seconds Redis has to connect or answer; slower counts as down (requests go on unchecked).
    redis_timeout: float = 0.1
    queue_prefix: str = "smsbroker"
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    max_body_chars: int = 1600
    max_recipients: int = 1000
    #: Provider dialects served under /compat/<name> (DIALECTS, comma-separated; default all).
    dialects: tuple[str, ...] = DIALECT_NAMES
    #: Recipients a send to groups is made in at a time by the expand worker (one ingest
    #: message and one position update each).
    expand_page_size: int = 1000
    log_format: str = "console"
    db_pool_size: int = 10
    #: Seconds between webhook attempts: attempt n+1 waits webhook_retry_delays[n].
    webhook_retry_delays: tuple[float, ...] = field(
        default=(5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0)
    )
    webhook_timeout: float = 10.0
    #: Let webhooks go to loopback and private addresses (local try-outs and tests only).
    webhook_allow_private: bool = False
    #: A message no carrier took within this many seconds ends failed (EXPIRED), refunded.
    message_validity: float = 48 * 3600.0
    #: A sent message with no final receipt after this many seconds ends undelivered (NO_RECEIPT).
    receipt_wait: float = 72 * 3600.0
    #: How long an API process trusts a key lookup (revocations take this long to apply).
    auth_cache_seconds: float = 1.0
    #: A client has this many seconds to send a request's line and headers (then 408).
    http_header_timeout: float = 10.0
    #: And this many seconds, from the end of its headers, to send the whole body (then 408).
    http_body_timeout: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        prefix = env.get("QUEUE_PREFIX", cls.queue_prefix)
        if not _PREFIX_RE.match(prefix):
            raise InputError(f"QUEUE_PREFIX {prefix!r} must match {_PREFIX_RE.pattern}")
        log_format = env.get("LOG_FORMAT", cls.log_format)
        if log_format not in ("console", "json"):
            raise InputError("LOG_FORMAT must be 'console' or 'json'", field="LOG_FORMAT")
        return cls(
            database_url=env.get("DATABASE_URL", cls.database_url),
            amqp_url=env.get("AMQP_URL", cls.amqp_url),
            redis_url=env.get("REDIS_URL", cls.redis_url),
            redis_timeout=_seconds(env, "REDIS_TIMEOUT", cls.redis_timeout, 10.0),
            queue_prefix=prefix,
            api_host=env.get("API_HOST", cls.api_host),
            api_port=_int(env, "API_PORT", cls.api_port, 0, 65535),
            max_body_chars=_int(env, "MAX_BODY_CHARS", cls.max_body_chars, 1, 100_000),
            max_recipients=_int(env, "MAX_RECIPIENTS", cls.max_recipients, 1, 100_000),
            dialects=_dialects(env.get("DIALECTS")),
            expand_page_size=_int(env, "EXPAND_PAGE_SIZE", cls.expand_page_size, 1, 10_000),
            log_format=log_format,
            db_pool_size=_int(env, "DB_POOL_SIZE", cls.db_pool_size, 1, 500),
            webhook_retry_delays=_delays(
                env, "WEBHOOK_RETRY_DELAYS", (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0)
            ),
            webhook_timeout=float(_int(env, "WEBHOOK_TIMEOUT", 10, 1, 120)),
            message_validity=3600.0 * _int(env, "MESSAGE_VALIDITY_HOURS", 48, 1, 720),
            webhook_allow_private=env.get("WEBHOOK_ALLOW_PRIVATE", "").lower()
            in ("1", "true", "yes"),
            receipt_wait=3600.0 * _int(env, "RECEIPT_WAIT_HOURS", 72, 1, 2160),
            auth_cache_seconds=float(_int(env, "AUTH_CACHE_SECONDS", 1, 0, 300)),
            http_header_timeout=_seconds(
                env, "HTTP_HEADER_TIMEOUT", cls.http_header_timeout, 300.0
            ),
            http_body_timeout=_seconds(env, "HTTP_BODY_TIMEOUT", cls.http_body_timeout, 3600.0),
        )
