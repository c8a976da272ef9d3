"""The submit worker: queued messages out over the connectors' SMPP binds.

Per AMQP message (up to a hundred ids for one connector): claim the messages in one statement
(queued → sending; a redelivery may also take back what a crashed worker left in sending),
submit every part through the connector's window, then record parts, statuses, history and
refunds in one transaction. A part the carrier refused for good fails its message and refunds
it; a part that met a full queue, throttling or a lost bind goes back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
import structlog
from aio_pika.abc import AbstractIncomingMessage

from broker.bind_leases import BindLeases, Wanted, tps_share
from broker.long_mode import LongMode
from broker.notify import publish_events, status_events
from broker.queue_messages import SubmitJob
from broker.queues import SUBMIT_CHUNK, Amqp
from broker.routing import RouteTable
from broker.smpp.connector import (
    Connector,
    ConnectorConfig,
    DeliverHandler,
    SubmitOutcome,
    SubmitPart,
    SubmitUnavailable,
)
from broker.smpp.constants import Status
from broker.smpp.errors import SmppCodecError
from broker.smpp.receipt import IdFormat, canonical_message_id
from broker.status import PartStatus
from broker.store import connectors
from broker.store import messages as store
from broker.submit_plan import plan_parts, smpp_absolute_time
from workers.consumer import TRANSIENT, Consumer
from workers.forwarder import DeliverForwarder
from workers.polling import every
from workers.submit_jobs import Outcomes, claim_job, expired, one_by_one, record, requeue

log = structlog.get_logger(__name__)

#: Refusals worth another try later rather than a failed message.
TEMPORARY_STATUSES = frozenset({Status.ESME_RTHROTTLED, Status.ESME_RMSGQFUL})
#: Refusals that are the connector's, not the message's: the connector is out, its messages
#: go to the next route.
CONNECTOR_STATUSES = frozenset({Status.ESME_RSYSERR, Status.ESME_RINVBNDSTS})


@dataclass(frozen=True)
class ConnectorRuntime:
    connector: Connector
    id_format: IdFormat
    mode: LongMode
    #: AMQP messages (of up to SUBMIT_CHUNK messages each) taken at once for this connector.
    prefetch: int
    #: How long one part may wait for a bind, window room and its TPS slot.
    submit_timeout: float
    #: Seconds with no bind up before the connector counts as out.
    failover_after: float = 30.0

    @classmethod
    def from_row(cls, row: asyncpg.Record, on_deliver: DeliverHandler) -> ConnectorRuntime:
        prefetch = max(4, row["binds"] * row["window_size"] // 20)
        timeout = 30.0
        if row["tps"] is not None:
            # Everything prefetched must get through the TPS cap before it times out.
            timeout = max(timeout, 1.5 * prefetch * SUBMIT_CHUNK / float(row["tps"]))
        return cls(
            Connector(connector_config(row), on_deliver),
            row["dlr_id_format"],
            LongMode(row["long_mode"], row["gsm7_packed"]),
            prefetch,
            timeout,
            float(row["failover_after"]),
        )


def connector_config(row: asyncpg.Record) -> ConnectorConfig:
    return ConnectorConfig(
        name=row["name"],
        host=row["host"],
        port=row["port"],
        system_id=row["system_id"],
        password=row["password"],
        system_type=row["system_type"],
        binds=row["binds"],
        window=row["window_size"],
        tps=float(row["tps"]) if row["tps"] is not None else None,
        bind_mode=row["bind_mode"],
    )


async def submit_parts(
    runtime: ConnectorRuntime, parts: list[SubmitPart]
) -> list[SubmitOutcome | BaseException]:
    """Each part's outcome, or what its submit raised, in order; the parts go concurrently.
    A single part (most messages) is awaited in place: a task and a gather around it cost the
    worker more than they are worth on every message."""
    if len(parts) != 1:
        return await asyncio.gather(
            *(runtime.connector.submit(p, timeout=runtime.submit_timeout) for p in parts),
            return_exceptions=True,
        )
    try:
        return [await runtime.connector.submit(parts[0], timeout=runtime.submit_timeout)]
    except (SubmitUnavailable, SmppCodecError) as exc:
        return [exc]


class SubmitWorker:
    """Binds the connectors' SMPP slots this process leases (broker.bind_leases) and submits
    their queues; a connector it holds no slot of is neither bound nor consumed here."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        amqp: Amqp,
        forwarder: DeliverForwarder,
        *,
        refresh_every: float = 5.0,
        validity: float = 48 * 3600,
        lease_ttl: float = 10.0,
        lease_every: float = 2.0,
    ) -> None:
        self.validity = validity
        self.pool = pool
        self.amqp = amqp
        self.forwarder = forwarder
        self.runtimes: dict[str, ConnectorRuntime] = {}
        self.consumers: dict[str, Consumer] = {}
        self.leases = BindLeases(pool, amqp.names.prefix, ttl=lease_ttl, every=lease_every)
        self.routes = RouteTable()
        #: Each connector's settings as bound: a change rebinds it.
        self._settings: dict[str, tuple[object, ...]] = {}
        #: Since when a connector this process holds slots of has had no bind up.
        self._unbound_since: dict[str, float] = {}
        self._refresh_every = refresh_every
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.refresh_connectors()
        with contextlib.suppress(*TRANSIENT):
            await self.lease_round()
        self._tasks = [
            asyncio.create_task(every(self._refresh_every, self.refresh_connectors)),
            asyncio.create_task(every(self.leases.every, self.lease_round)),
        ]

    async def stop(self) -> None:
        """Stop refreshing, let each connector's work in flight finish, unbind, and hand the
        bind slots back at once (not after their leases run out)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*(c.stop() for c in self.consumers.values()))
        self.consumers.clear()
        for runtime in self.runtimes.values():
            await runtime.connector.close()
        with contextlib.suppress(*TRANSIENT):
            await self.leases.release_all()

    async def refresh_connectors(self) -> None:
        """Take up SMPP connectors added (or enabled) since the last look, rebind those whose
        settings changed, and let go of those disabled or removed (a WhatsApp connector's queue
        is the whatsapp role's: workers.whatsapp_sender); binds open once a slot of theirs is
        leased (lease_round)."""
        rows = {row["name"]: row for row in await connectors.all_rows(self.pool)}
        for name in list(self.runtimes):
            if name not in rows or tuple(rows[name]) != self._settings.get(name):
                await self._drop(name)
        for name, row in rows.items():
            if name in self.runtimes:
                continue
            runtime = ConnectorRuntime.from_row(row, self.forwarder.on_deliver)
            self.forwarder.id_formats[name] = row["dlr_id_format"]
            self.forwarder.scopes[name] = row["scope"]
            await runtime.connector.start(slots=())
            self.runtimes[name] = runtime
            self._settings[name] = tuple(row)
            log.info("connector taken up", connector=name)

    async def _drop(self, name: str) -> None:
        """Stop consuming and unbind a connector disabled, removed or changed."""
        consumer = self.consumers.pop(name, None)
        if consumer is not None:
            await consumer.stop()
        runtime = self.runtimes.pop(name)
        self._settings.pop(name, None)
        self._unbound_since.pop(name, None)
        await runtime.connector.close()
        log.info("connector let go (disabled, removed or changed)", connector=name)

    async def lease_round(self) -> None:
        """Renew this process's bind slots, give back and take what the fair share says, and
        bind and consume accordingly. Leases not renewed for too long: every bind closes."""
        wanted = {
            name: Wanted(rt.connector.config.binds, rt.connector.config.tps)
            for name, rt in self.runtimes.items()
        }
        try:
            held = await self.leases.round(wanted, self._give_back)
        except TRANSIENT:
            if self.leases.expired:
                log.warning("bind leases could not be renewed in time; closing every bind")
                for name in self.runtimes:
                    await self._use(name, set())
            raise
        for name in self.runtimes:
            await self._use(name, held.get(name, set()))
        await self._watch_outages()

    async def _watch_outages(self) -> None:
        """A connector whose slots this process holds, with no bind up for its failover_after
        seconds, is out: routes pass it over. It is in again once a bind is up and it has been
        out for failover_after seconds (a connector that refused as a connector gets that long
        before it is tried again)."""
        now = time.monotonic()
        out = await connectors.outages(self.pool)
        for name, runtime in self.runtimes.items():
            connector = runtime.connector
            connector.set_out(name in out)
            if connector.bound_count > 0 or not connector.slots:
                self._unbound_since.pop(name, None)
                back = connector.bound_count > 0 and out.get(name, 0.0) >= runtime.failover_after
                if back and await connectors.mark_back(self.pool, name):
                    log.info("connector back in", connector=name)
                    connector.set_out(False)
                continue
            since = self._unbound_since.setdefault(name, now)
            if now - since >= runtime.failover_after and name not in out:
                reason = f"no bind up for {runtime.failover_after:g} s"
                if await connectors.mark_out(self.pool, name, reason):
                    log.warning("connector out: routes pass it over", connector=name, reason=reason)
                connector.set_out(True)

    async def _give_back(self, name: str, slots: set[int]) -> None:
        runtime = self.runtimes.get(name)
        if runtime is not None:
            await self._use(name, set(runtime.connector.slots) - slots)

    async def _use(self, name: str, slots: set[int]) -> None:
        """Bind exactly ``slots`` of the connector at their share of its TPS; consume its
        queue while it has any (a consumer stops before the last bind closes)."""
        runtime = self.runtimes[name]
        config = runtime.connector.config
        if not slots:
            consumer = self.consumers.pop(name, None)
            if consumer is not None:
                await consumer.stop()
        if set(runtime.connector.slots) != slots:
            log.info("bind slots", connector=name, slots=sorted(slots))
        await runtime.connector.set_slots(slots, tps_share(config.tps, len(slots), config.binds))
        if slots and name not in self.consumers:
            consumer = Consumer(
                self.amqp,
                self.amqp.names.submit(name),
                one_by_one(self.handle, name),
                name=f"submit.{name}",
                prefetch=runtime.prefetch,
            )
            await consumer.start()
            self.consumers[name] = consumer

    async def handle(self, name: str, message: AbstractIncomingMessage, attempt: int = 1) -> None:
        """Submit one SubmitJob's messages; raise (and the consumer retries) if not recorded.

        A retry of the same delivery (attempt > 1) takes back the messages its own earlier
        attempt left in 'sending'.
        """
        runtime = self.runtimes[name]
        taken = await claim_job(self.pool, self.amqp, name, message, attempt)
        if taken is None:
            return
        job, claimed = taken
        outcomes = Outcomes()
        if runtime.connector.out:
            # Out: what no part of went out yet goes to the next route now.
            fresh = [r for r in claimed if not r["done"]]
            left = await self._hand_over(name, claimed, [r["id"] for r in fresh], "is out")
            kept = {r["id"] for r in fresh} - set(left)
            claimed = [r for r in claimed if r["id"] not in kept]
        await asyncio.gather(
            *(
                self._submit_message(runtime, row, outcomes, job.plain_bodies.get(row["id"]))
                for row in claimed
            )
        )
        failed_rows = await record(self.pool, name, outcomes)
        if outcomes.handover:
            reason = "refused submit_sm with a connector error"
            if await connectors.mark_out(self.pool, name, reason):
                log.warning("connector out: routes pass it over", connector=name, reason=reason)
            runtime.connector.set_out(True)
            outcomes.retry += await self._hand_over(name, claimed, outcomes.handover, reason)
        if outcomes.retry:
            log.info(
                "messages requeued: carrier busy or no bind",
                connector=name,
                count=len(outcomes.retry),
                message_ids=[str(i) for i in outcomes.retry[:5]],
            )
            await requeue(self.amqp, name, job, outcomes.retry)
        await publish_events(self.amqp, status_events(failed_rows))

    async def _submit_message(
        self,
        runtime: ConnectorRuntime,
        row: asyncpg.Record,
        out: Outcomes,
        plain_body: str | None = None,
    ) -> None:
        """Submit one claimed message's parts. ``plain_body``: the text the carrier gets
        instead of the stored (masked) body; it is never logged."""
        mid: UUID = row["id"]
        too_late = expired(row, self.validity, "a carrier")
        if too_late is not None:
            out.failed[mid] = too_late
            return
        expires_at: datetime | None = row["expires_at"]
        parts = plan_parts(
            mid,
            row["to_number"],
            row["sender"],
            plain_body if plain_body is not None else row["body"],
            runtime.mode,
            validity_period=smpp_absolute_time(expires_at) if expires_at is not None else "",
        )
        done = set(row["done"])
        todo = [(seq, p) for seq, p in enumerate(parts, start=1) if seq not in done]
        results = await submit_parts(runtime, [p for _, p in todo])
        refusal: tuple[str, str] | None = None
        temporary = refused_by_connector = accepted = False
        for (seq, _), result in zip(todo, results, strict=True):
            if isinstance(result, SubmitUnavailable):
                temporary = True
            elif isinstance(result, SmppCodecError):
                # Nothing this message can become on the wire: retrying would loop forever.
                out.parts.append((mid, seq, None, PartStatus.FAILED, None, "ENCODING"))
                refusal = ("INVALID_MESSAGE", f"part {seq} cannot be encoded: {result.message}")
            elif isinstance(result, BaseException):
                raise result
            elif result.command_status in CONNECTOR_STATUSES:
                refused_by_connector = True
            else:
                refusal = self._part(runtime, mid, seq, result, out) or refusal
                temporary = temporary or result.command_status in TEMPORARY_STATUSES
                accepted = accepted or result.command_status == 0
        if refusal is not None:
            out.failed[mid] = refusal
        elif refused_by_connector and not done and not accepted:
            out.handover.append(mid)
        elif temporary or refused_by_connector:
            out.retry.append(mid)
        else:
            out.sent.append(mid)

    async def _hand_over(
        self, name: str, claimed: list[asyncpg.Record], ids: list[UUID], reason: str
    ) -> list[UUID]:
        """Give messages of a connector that is out to the next route of each number; the
        ids no other connector can carry (they stay, to be retried here)."""
        if not ids:
            return []
        await self.routes.refresh(self.pool, force=True)
        rows = {r["id"]: r for r in claimed}
        moves: dict[UUID, str] = {}
        for mid in ids:
            row = rows[mid]
            route = self.routes.match(row["to_number"], row["channel"], avoid=frozenset({name}))
            if route is not None:
                moves[mid] = route.connector
        moved = await store.hand_over(self.pool, moves, f"{name} {reason}")
        by_connector: dict[str, list[UUID]] = {}
        for mid, connector in moved:
            by_connector.setdefault(connector, []).append(mid)
        for connector, chunk in by_connector.items():
            await self.amqp.declare(self.amqp.names.submit(connector))
            await self.amqp.publish(
                self.amqp.names.submit(connector), SubmitJob(ids=chunk, retry=True)
            )
            log.info("messages handed over", connector=name, to=connector, count=len(chunk))
        done = {mid for mid, _ in moved}
        return [mid for mid in ids if mid not in done]

    def _part(
        self, runtime: ConnectorRuntime, mid: UUID, seq: int, result: SubmitOutcome, out: Outcomes
    ) -> tuple[str, str] | None:
        status = result.command_status
        if status == 0:
            # A carrier that accepts without an id gets the part recorded as sent all the
            # same; no receipt can be matched to it, so it stays sent.
            carrier_id = canonical_message_id(
                result.message_id or "", fmt=runtime.id_format, from_receipt=False
            )
            out.parts.append((mid, seq, carrier_id, PartStatus.SENT, 0, None))
            return None
        if status in TEMPORARY_STATUSES:
            return None
        code = f"0x{status:08X}"
        out.parts.append((mid, seq, None, PartStatus.FAILED, status, code))
        return "SUBMIT_REJECTED", f"the carrier refused part {seq}: command_status {code}"
