"""The simulated carrier: an SMPP 3.4 server (SMSC) for trying and load-testing the gateway.

It accepts binds for its configured accounts, answers submit_sm with a message id, sends a
delivery receipt after a configurable delay with a configurable mix of outcomes, injects inbound
(MO) messages on request, and misbehaves on demand (see :mod:`smsc_sim.faults`).

Receipts and MO wait in a queue per system_id until a receiver or transceiver bind of that
system_id has room in its window; a deliver_sm answered with an error, or not at all within
``response_timeout``, is retried up to ``receipt_max_attempts`` times; one whose connection is
lost goes back to the queue without counting as an attempt.

Counters (``stats``): ``receipts_sent`` counts every receipt deliver_sm written, retries
included; ``receipts_acknowledged`` those answered with status 0; ``receipts_retried`` retries
scheduled; ``receipts_failed`` receipts given up on; ``mo_*`` the same for MO parts.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from typing import Any

import structlog

from broker.errors import InputError
from broker.segmentation import DATA_CODING, encode_parts, split
from broker.smpp.constants import ESM_UDHI, CommandId, Status
from broker.smpp.pdu import Pdu, encode_pdu
from smsc_sim.config import SimConfig
from smsc_sim.faults import Faults, parse_faults
from smsc_sim.ids import MessageIdGenerator, receipt_id
from smsc_sim.outcomes import Outcome, OutcomePicker, longest_suffix_match
from smsc_sim.receipts import build_receipt
from smsc_sim.records import SubmitRecord
from smsc_sim.session import Delivery, SmppSession

log = structlog.get_logger(__name__)

COUNTERS = (
    "connections_accepted", "binds", "bind_rejects", "submits", "submit_errors",
    "receipts_sent", "receipts_acknowledged", "receipts_retried", "receipts_failed",
    "mo_sent", "mo_acknowledged", "mo_retried", "mo_failed", "generic_nacks",
)  # fmt: skip


class SmscSimulator:
    """An in-process SMSC; ``start()`` inside a running event loop, ``stop()`` when done."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.faults = Faults()
        self.submitted: deque[SubmitRecord] = deque(maxlen=config.submitted_limit)
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._ids = MessageIdGenerator(config.message_id_format, seed=config.seed)
        self._picker = OutcomePicker(config.outcomes, config.outcome_rules, seed=config.seed)
        self._random = random.Random(config.seed)
        self._sessions: set[SmppSession] = set()
        self._receivers: dict[str, list[SmppSession]] = {}
        self._queues: dict[str, deque[Delivery]] = {}
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._stall_handle: asyncio.TimerHandle | None = None
        self._stalled = False
        self._mo_reference = self._random.randrange(256)
        self._port = 0

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            self._new_session, self.config.host, self.config.port, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]
        self._schedule_sweep()
        log.info("smsc_sim.listening", host=self.config.host, port=self._port)

    async def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        for handle in (self._sweeper, self._stall_handle):
            if handle is not None:
                handle.cancel()
        self._stalled = False
        for session in list(self._sessions):
            session.abort()
        await server.wait_closed()
        log.info("smsc_sim.stopped", port=self._port)

    @property
    def port(self) -> int:
        """The bound port (the ephemeral one when configured with port 0)."""
        return self._port

    def _new_session(self) -> SmppSession:
        return SmppSession(
            self, smsc_system_id=self.config.smsc_system_id, window=self.config.deliver_window
        )

    # --- Carrier protocol (called by sessions) ----------------------------------------------

    @property
    def stalled(self) -> bool:
        return self._stalled

    @property
    def submit_delay(self) -> float:
        return self.faults.submit_delay

    def count(self, counter: str) -> None:
        self._counts[counter] += 1

    def session_opened(self, session: SmppSession) -> None:
        self._sessions.add(session)
        self._counts["connections_accepted"] += 1

    def session_closed(self, session: SmppSession) -> None:
        self._sessions.discard(session)
        if session.system_id is None:
            return
        receivers = self._receivers.get(session.system_id)
        if receivers is not None and session in receivers:
            receivers.remove(session)
        if session.mode is not None:
            log.info("smsc_sim.unbound", peer=session.peer, system_id=session.system_id)
        pending = session.take_in_flight()
        if pending:
            self._queue(session.system_id).extendleft(reversed(pending))
            self._pump(session.system_id)

    def check_bind(self, system_id: str, password: str) -> int:
        status = self.faults.reject_binds
        if status is None:
            expected = self.config.accounts.get(system_id)
            if expected is None:
                status = Status.ESME_RINVSYSID
            elif password != expected:
                status = Status.ESME_RINVPASWD
            else:
                status = 0
        self._counts["bind_rejects" if status else "binds"] += 1
        return int(status)

    def session_bound(self, session: SmppSession) -> None:
        assert session.system_id is not None and session.mode is not None
        if session.mode.can_receive:
            self._receivers.setdefault(session.system_id, []).append(session)
            self._pump(session.system_id)

    def accept_submit(self, session: SmppSession, pdu: Pdu) -> tuple[int, str]:
        """(command_status, message_id) for one submit_sm; schedules its receipt if asked."""
        counts = self._counts
        counts["submits"] += 1
        body = pdu.body
        destination = str(body.get("destination_addr", ""))
        status = self._submit_status(destination)
        if status:
            counts["submit_errors"] += 1
            return status, ""
        message_id = self._ids.next_id()
        record = SubmitRecord(
            message_id=message_id,
            system_id=session.system_id or "",
            source_addr=str(body.get("source_addr", "")),
            destination_addr=destination,
            short_message=_bytes(body.get("short_message")),
            data_coding=_int(body.get("data_coding")),
            esm_class=_int(body.get("esm_class")),
            registered_delivery=_int(body.get("registered_delivery")),
            source_addr_ton=_int(body.get("source_addr_ton")),
            source_addr_npi=_int(body.get("source_addr_npi")),
            dest_addr_ton=_int(body.get("dest_addr_ton")),
            dest_addr_npi=_int(body.get("dest_addr_npi")),
            tlvs=pdu.tlvs,
            validity_period=str(body.get("validity_period") or ""),
            submitted_at=time.time(),
        )
        self.submitted.append(record)
        wanted = record.registered_delivery & 0x03
        if wanted:
            outcome = self._picker.pick(destination)
            record.outcome = outcome.stat
            # 1: receipt on success or failure; 2: on failure only; 3 (reserved): as 1.
            if wanted != 2 or not outcome.delivered:
                self._schedule_receipt(record, outcome)
        return 0, message_id

    def delivery_answered(self, session: SmppSession, delivery: Delivery, status: int) -> None:
        kind = delivery.kind
        if status == 0:
            self._counts[f"{kind}_acknowledged"] += 1
        else:
            log.debug("smsc_sim.delivery_refused", system_id=delivery.system_id, status=status)
            self._retry(delivery)
        self._pump(delivery.system_id)

    # --- submits and receipts -------------------------------------------------------------

    def _submit_status(self, destination: str) -> int:
        status = self.faults.next_submit_error()
        if status is not None:
            return status
        rules = self.config.submit_status_rules
        if rules:
            suffix = longest_suffix_match(rules, destination)
            if suffix is not None:
                return rules[suffix]
        return 0

    def _schedule_receipt(self, record: SubmitRecord, outcome: Outcome) -> None:
        low, high = self.config.receipt_delay
        delay = low if low == high else self._random.uniform(low, high)
        assert self._loop is not None
        self._loop.call_later(delay, self._receipt_due, record, outcome)

    def _receipt_due(self, record: SubmitRecord, outcome: Outcome) -> None:
        if self._server is None:
            return
        config = self.config
        pdu = build_receipt(
            record,
            outcome,
            receipt_id(record.message_id, decimal=config.receipt_id_decimal),
            done_at=time.time(),
            with_tlvs=config.receipt_tlvs,
            seconds=config.receipt_seconds,
        )
        self._queue(record.system_id).append(
            Delivery(record.system_id, encode_pdu(pdu), "receipts")
        )
        self._pump(record.system_id)

    def _queue(self, system_id: str) -> deque[Delivery]:
        queue = self._queues.get(system_id)
        if queue is None:
            queue = self._queues[system_id] = deque()
        return queue

    def _pump(self, system_id: str) -> None:
        """Hand queued deliveries to the receivers of ``system_id`` that have room, in turn."""
        queue = self._queues.get(system_id)
        if not queue or self._stalled or self._loop is None:
            return
        ready = [s for s in self._receivers.get(system_id, ()) if s.has_room]
        deadline = self._loop.time() + self.config.response_timeout
        turn = 0
        while queue and ready:
            turn %= len(ready)
            session = ready[turn]
            delivery = queue.popleft()
            session.send_delivery(delivery, deadline)
            self._counts[f"{delivery.kind}_sent"] += 1
            if session.has_room:
                turn += 1
            else:
                ready.pop(turn)

    def _retry(self, delivery: Delivery) -> None:
        delivery.attempts += 1
        kind = delivery.kind
        if delivery.attempts >= self.config.receipt_max_attempts:
            self._counts[f"{kind}_failed"] += 1
            log.warning(
                "smsc_sim.delivery_given_up", system_id=delivery.system_id, kind=kind,
                attempts=delivery.attempts,
            )  # fmt: skip
            return
        self._counts[f"{kind}_retried"] += 1
        assert self._loop is not None
        self._loop.call_later(self.config.receipt_retry_delay, self._requeue, delivery)

    def _requeue(self, delivery: Delivery) -> None:
        if self._server is None:
            return
        self._queue(delivery.system_id).append(delivery)
        self._pump(delivery.system_id)

    def _schedule_sweep(self) -> None:
        assert self._loop is not None
        interval = min(1.0, self.config.response_timeout / 4)
        self._sweeper = self._loop.call_later(interval, self._sweep)

    def _sweep(self) -> None:
        """Treat deliver_sm without a response past the timeout as refused."""
        assert self._loop is not None
        now = self._loop.time()
        touched: set[str] = set()
        for session in list(self._sessions):
            for delivery in session.expired(now):
                log.debug("smsc_sim.delivery_timeout", system_id=delivery.system_id)
                self._retry(delivery)
                touched.add(delivery.system_id)
        for system_id in touched:
            self._pump(system_id)
        self._schedule_sweep()

    # --- inbound (MO) ---------------------------------------------------------------------

    async def inject_mo(
        self, source: str, destination: str, text: str, *, system_id: str | None = None
    ) -> int:
        """Queue an inbound message for a receiver bind; returns the number of parts.

        Long texts go as concatenated parts with an 8-bit UDH. Without ``system_id`` the
        message goes to the only account, or else to any account with a receiver bound.
        """
        target = self._mo_target(system_id)
        segmentation = split(text)
        self._mo_reference = (self._mo_reference + 1) % 256
        parts = encode_parts(segmentation, reference=self._mo_reference)
        base = {
            "source_addr_ton": 1 if source.startswith("+") else 0,
            "source_addr_npi": 1,
            "source_addr": source.lstrip("+"),
            "dest_addr_ton": 1 if destination.startswith("+") else 0,
            "dest_addr_npi": 1,
            "destination_addr": destination.lstrip("+"),
            "esm_class": ESM_UDHI if len(parts) > 1 else 0,
            "data_coding": DATA_CODING[segmentation.encoding],
        }
        queue = self._queue(target)
        for part in parts:
            pdu = Pdu(CommandId.DELIVER_SM, 0, 0, {**base, "short_message": part})
            queue.append(Delivery(target, encode_pdu(pdu), "mo"))
        self._pump(target)
        return len(parts)

    def _mo_target(self, system_id: str | None) -> str:
        accounts = self.config.accounts
        if system_id is not None:
            if system_id not in accounts:
                raise InputError(
                    f"no account {system_id!r}", code="UNKNOWN_SYSTEM_ID", field="system_id"
                )
            return system_id
        if len(accounts) == 1:
            return next(iter(accounts))
        for candidate, receivers in self._receivers.items():
            if receivers:
                return candidate
        raise InputError(
            "several accounts and none has a receiver bound: give system_id",
            code="NO_RECEIVER",
            field="system_id",
        )

    # --- faults ---------------------------------------------------------------------------

    def set_faults(self, **kw: Any) -> dict[str, object]:
        """Switch faults on (see :mod:`smsc_sim.faults`); returns the standing faults."""
        request = parse_faults(kw)
        request.apply(self.faults)
        log.info("smsc_sim.faults", **{k: kw[k] for k in sorted(kw)})
        if request.drop:
            self.drop_connections()
        if request.stall > 0:
            self.stall(request.stall)
        return self.faults.to_json()

    def clear_faults(self) -> None:
        self.faults = Faults()
        self._end_stall()
        log.info("smsc_sim.faults_cleared")

    def drop_connections(self) -> int:
        sessions = list(self._sessions)
        for session in sessions:
            session.abort()
        log.info("smsc_sim.dropped", connections=len(sessions))
        return len(sessions)

    def stall(self, seconds: float) -> None:
        """Neither read nor write on any connection for ``seconds``."""
        assert self._loop is not None
        if self._stall_handle is not None:
            self._stall_handle.cancel()
        self._stalled = True
        for session in self._sessions:
            session.stall()
        self._stall_handle = self._loop.call_later(seconds, self._end_stall)

    def _end_stall(self) -> None:
        if self._stall_handle is not None:
            self._stall_handle.cancel()
            self._stall_handle = None
        if not self._stalled:
            return
        self._stalled = False
        for session in list(self._sessions):
            session.unstall()
        for system_id in list(self._queues):
            self._pump(system_id)

    # --- inspection -----------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, object]:
        bound: dict[str, int] = {"transmitter": 0, "receiver": 0, "transceiver": 0}
        for session in self._sessions:
            if session.mode is not None:
                bound[session.mode.value] += 1
        return {
            **self._counts,
            "connections": len(self._sessions),
            "bound": bound,
            "queued": sum(len(queue) for queue in self._queues.values()),
            "in_flight": sum(len(session.in_flight) for session in self._sessions),
            "stalled": self._stalled,
            "faults": self.faults.to_json(),
        }


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else b""
