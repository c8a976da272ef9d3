"""A carrier connection as the submit worker sees it: several binds, one TPS, one submit().

Each bind runs under its own supervisor that reconnects forever with jittered exponential
backoff. submit() spreads over the bound transmitters, honours the connector's TPS, and
answers load refusals (ESME_RTHROTTLED, ESME_RMSGQFUL) by slowing down and retrying.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

import structlog

from broker import metrics
from broker.errors import InputError, SmppError
from broker.smpp.client import ClientConfig, SmppClient, connect
from broker.smpp.constants import Status
from broker.smpp.errors import (
    SmppConnectionLost,
    SmppStateError,
    SmppTimeout,
    SubmitUnavailable,
)
from broker.smpp.pdu import BodyValue, Pdu
from broker.smpp.session import BindMode
from broker.smpp.throttle import RateLimiter

__all__ = [
    "Connector",
    "ConnectorConfig",
    "DeliverHandler",
    "SubmitOutcome",
    "SubmitPart",
    "SubmitUnavailable",
]

log = structlog.get_logger(__name__)

DeliverHandler = Callable[[str, Pdu], Awaitable[None]]

_LOAD_REFUSALS: Final = frozenset({Status.ESME_RTHROTTLED, Status.ESME_RMSGQFUL})


@dataclass(frozen=True)
class ConnectorConfig:
    """One carrier account. With ``bind_mode="tx_rx"`` each of ``binds`` is a pair."""

    name: str
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    binds: int = 1
    window: int = 10
    tps: float | None = None
    bind_mode: Literal["trx", "tx_rx"] = "trx"
    enquire_link_interval: float = 30.0
    response_timeout: float = 10.0
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str, str]] = [
            (bool(self.name), "name", "must not be empty"),
            (bool(self.host), "host", "must not be empty"),
            (0 < self.port < 65536, "port", "must be 1..65535"),
            (0 < len(self.system_id) <= 15, "system_id", "must be 1..15 characters"),
            (len(self.password) <= 8, "password", "must be at most 8 characters"),
            (len(self.system_type) <= 12, "system_type", "must be at most 12 characters"),
            (self.binds >= 1, "binds", "must be at least 1"),
            (self.window >= 1, "window", "must be at least 1"),
            (self.tps is None or self.tps > 0, "tps", "must be positive"),
            (self.bind_mode in ("trx", "tx_rx"), "bind_mode", "must be trx or tx_rx"),
            (self.enquire_link_interval > 0, "enquire_link_interval", "must be positive"),
            (self.response_timeout > 0, "response_timeout", "must be positive"),
            (
                0 < self.reconnect_min <= self.reconnect_max,
                "reconnect_min",
                "must be 0 < min <= max",
            ),
        ]
        for ok, name, problem in checks:
            if not ok:
                raise InputError(
                    f"connector {name} {problem}", code="INVALID_CONNECTOR", field=name
                )
        for name in ("system_id", "password", "system_type"):
            if not getattr(self, name).isascii():
                raise InputError(
                    f"connector {name} must be ASCII", code="INVALID_CONNECTOR", field=name
                )

    def client_config(self, mode: BindMode) -> ClientConfig:
        return ClientConfig(
            host=self.host,
            port=self.port,
            system_id=self.system_id,
            password=self.password,
            system_type=self.system_type,
            mode=mode,
            window=self.window,
            enquire_link_interval=self.enquire_link_interval,
            response_timeout=self.response_timeout,
            connect_timeout=self.response_timeout,
        )


@dataclass(frozen=True)
class SubmitPart:
    source_addr: str
    destination_addr: str
    short_message: bytes
    data_coding: int
    esm_class: int = 0
    registered_delivery: int = 1
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 1
    dest_addr_npi: int = 1
    validity_period: str = ""
    tlvs: Mapping[int, bytes] = field(default_factory=dict)

    def body(self) -> dict[str, BodyValue]:
        return {
            "service_type": "",
            "source_addr_ton": self.source_addr_ton,
            "source_addr_npi": self.source_addr_npi,
            "source_addr": self.source_addr,
            "dest_addr_ton": self.dest_addr_ton,
            "dest_addr_npi": self.dest_addr_npi,
            "destination_addr": self.destination_addr,
            "esm_class": self.esm_class,
            "validity_period": self.validity_period,
            "registered_delivery": self.registered_delivery,
            "data_coding": self.data_coding,
            "short_message": self.short_message,
        }


@dataclass(frozen=True)
class SubmitOutcome:
    """command_status 0: accepted by the carrier; any other int: its refusal (vendor value)."""

    command_status: int
    message_id: str | None


class Connector:
    """The binds of one carrier account; see the module docstring."""

    def __init__(self, config: ConnectorConfig, on_deliver: DeliverHandler) -> None:
        self.config = config
        self._on_deliver = on_deliver
        self._log = log.bind(connector=config.name)
        self._clients: list[SmppClient] = []
        self._transmitters: list[SmppClient] = []
        self._supervisors: list[asyncio.Task[None]] = []
        #: Per bind slot (0..binds-1), its supervisors and its clients.
        self._slot_tasks: dict[int, list[asyncio.Task[None]]] = {}
        self._slot_clients: dict[int, list[SmppClient]] = {}
        #: Slots being given up: their supervisors must not reconnect.
        self._released: set[int] = set()
        #: Out (routes pass it over): a submit waiting for a bind gives up at once.
        self._out = False
        self._limiter = RateLimiter(config.tps)
        self._changed = asyncio.Event()
        self._next = 0
        self._closing = False
        self._accepted = metrics.SUBMIT_SM.labels(config.name, metrics.status_hex(0))
        self._parts = metrics.PARTS_SUBMITTED.labels(config.name)
        metrics.CONNECTORS.track(self)

    @property
    def bound_count(self) -> int:
        return sum(1 for client in self._clients if client.is_bound)

    def metrics_sample(self) -> metrics.ConnectorSample:
        """Binds and window as a scrape sees them (broker.metrics reads it)."""
        bound: dict[str, int] = {}
        for client in self._clients:
            if client.is_bound:
                bound[client.config.mode] = bound.get(client.config.mode, 0) + 1
        in_flight = sum(client.in_flight for client in self._clients)
        return metrics.ConnectorSample(self.config.name, bound, in_flight, self.config.window)

    @property
    def slots(self) -> frozenset[int]:
        """The bind slots this connector keeps open (each a bind, or a tx and rx pair)."""
        return frozenset(self._slot_tasks)

    async def start(self, slots: Iterable[int] | None = None) -> None:
        """Open the binds of ``slots`` (default: every one of the config's ``binds``)."""
        if self._supervisors:
            return
        wanted = range(self.config.binds) if slots is None else slots
        for slot in sorted(set(wanted)):
            self._open_slot(slot)

    def _open_slot(self, slot: int) -> None:
        modes: list[BindMode] = ["trx"] if self.config.bind_mode == "trx" else ["tx", "rx"]
        tasks = self._slot_tasks.setdefault(slot, [])
        for mode in modes:
            label = f"{self.config.name}/{slot}/{mode}"
            task = asyncio.create_task(self._supervise(mode, label, slot), name=f"smpp {label}")
            tasks.append(task)
            self._supervisors.append(task)

    async def set_slots(self, slots: Iterable[int], tps: float | None) -> None:
        """Keep exactly ``slots`` open and submit at ``tps`` at most: a bind slot given up is
        unbound (its submits in flight answered first) before this returns, so a slot it
        hands back can be taken elsewhere without the carrier seeing one bind too many."""
        wanted = set(slots)
        self._limiter.set_rate(tps)
        for slot in sorted(set(self._slot_tasks) - wanted):
            await self._close_slot(slot)
        for slot in sorted(wanted - set(self._slot_tasks)):
            if not self._closing:
                self._open_slot(slot)

    async def _close_slot(self, slot: int) -> None:
        self._released.add(slot)
        tasks = self._slot_tasks.pop(slot, [])
        clients = list(self._slot_clients.get(slot, []))
        if clients:
            await asyncio.gather(*(client.close() for client in clients))
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for task in tasks:
            self._supervisors.remove(task)
        self._released.discard(slot)
        self._notify()

    async def wait_bound(self, timeout: float, *, all_binds: bool = False) -> bool:
        """True once a transmitter is bound (``all_binds``: every configured bind)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        wanted = len(self._supervisors) if all_binds else 1
        while True:
            ready = self.bound_count if all_binds else len(self._usable())
            if ready >= wanted and wanted > 0:
                return True
            if not await self._wait_change(deadline - loop.time()):
                return False

    async def submit(self, part: SubmitPart, *, timeout: float = 30.0) -> SubmitOutcome:
        """Submit one part.

        ``timeout`` bounds the wait for a bound transmitter, window room, the TPS slot and
        load-refusal retries; once a submit_sm is written its response is awaited for the
        configured response_timeout, so an accepted message is not re-sent by a caller that
        would otherwise requeue it. Raises SubmitUnavailable (requeue) or SmppCodecError
        (a part no SMSC can carry).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        body = part.body()
        tlvs = dict(part.tlvs) if part.tlvs else None
        refused: int | None = None
        while True:
            client = await self._pick(deadline)
            if not await self._limiter.acquire(deadline):
                return self._give_up(refused, "TPS limit")
            try:
                response = await client.submit_sm(
                    body, tlvs, queue_timeout=max(0.0, deadline - loop.time())
                )
            except SmppStateError:
                await asyncio.sleep(0)  # that bind went away before the PDU was written
                continue
            except (SmppConnectionLost, SmppTimeout) as exc:
                metrics.SUBMIT_UNANSWERED.labels(self.config.name).inc()
                raise SubmitUnavailable(f"{self.config.name}: {exc.message}") from exc
            status = response.command_status
            self._count(status)
            if status in _LOAD_REFUSALS:
                refused = status
                pause = self._limiter.throttled(loop.time())
                if loop.time() + pause >= deadline:
                    self._parts.inc()
                    return SubmitOutcome(status, None)
                continue
            self._limiter.succeeded()
            self._parts.inc()
            message_id = response.body.get("message_id")
            return SubmitOutcome(
                status, message_id if isinstance(message_id, str) and message_id else None
            )

    async def close(self) -> None:
        """Unbind every session gracefully and stop reconnecting."""
        self._closing = True
        if self._clients:
            await asyncio.gather(*(client.close() for client in list(self._clients)))
        for task in self._supervisors:
            task.cancel()
        if self._supervisors:
            await asyncio.wait(self._supervisors)
        self._supervisors.clear()
        self._slot_tasks.clear()

    # --- internals -----------------------------------------------------------------------

    def _count(self, status: int) -> None:
        if status == 0:
            self._accepted.inc()
        else:
            metrics.SUBMIT_SM.labels(self.config.name, metrics.status_hex(status)).inc()

    def _give_up(self, refused: int | None, reason: str) -> SubmitOutcome:
        if refused is not None:
            self._parts.inc()
            return SubmitOutcome(refused, None)
        raise SubmitUnavailable(f"{self.config.name}: {reason} not met within the timeout")

    @property
    def out(self) -> bool:
        """Out (connector_outages): its messages go to the next route."""
        return self._out

    def set_out(self, out: bool) -> None:
        """Out: submits that would wait for a bind give up at once (SubmitUnavailable), so
        their messages can go to another connector instead of waiting here."""
        if out != self._out:
            self._out = out
            self._notify()

    def _usable(self) -> list[SmppClient]:
        return [client for client in self._transmitters if client.can_transmit]

    async def _pick(self, deadline: float) -> SmppClient:
        """A bound transmitter, preferring one with window room, round robin between them."""
        loop = asyncio.get_running_loop()
        while True:
            usable = self._usable()
            if usable:
                count = len(usable)
                start = self._next % count
                self._next = start + 1
                best = usable[start]
                for offset in range(count):
                    client = usable[(start + offset) % count]
                    if client.load < self.config.window:
                        return client
                    if client.load < best.load:
                        best = client
                return best
            if self._out:
                raise SubmitUnavailable(f"{self.config.name}: out, and no bound session")
            if not await self._wait_change(deadline - loop.time()):
                raise SubmitUnavailable(f"{self.config.name}: no bound session within the timeout")

    async def _wait_change(self, timeout: float) -> bool:
        if timeout <= 0:
            return False
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _supervise(self, mode: BindMode, label: str, slot: int) -> None:
        """Keep one bind up until close(): connect, bind, wait for loss, back off, repeat."""
        config = self.config.client_config(mode)
        on_deliver = functools.partial(self._on_deliver, self.config.name)
        delay = self.config.reconnect_min
        while not self._closing and slot not in self._released:
            try:
                client = await connect(config, on_deliver, label=label)
            except (OSError, SmppError) as exc:
                self._log.warning("smpp.bind_failed", bind=label, error=str(exc), retry_in=delay)
            else:
                delay = self.config.reconnect_min
                await self._hold(client, mode, slot)
                if self._closing or slot in self._released:
                    return
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, self.config.reconnect_max)

    async def _hold(self, client: SmppClient, mode: BindMode, slot: int) -> None:
        client.on_change = self._notify
        self._clients.append(client)
        self._slot_clients.setdefault(slot, []).append(client)
        if mode != "rx":
            self._transmitters.append(client)
        self._notify()
        try:
            await client.wait_closed()
        finally:
            self._clients.remove(client)
            self._slot_clients[slot].remove(client)
            if client in self._transmitters:
                self._transmitters.remove(client)
            self._notify()
            if not client.closed:
                client.abort()
