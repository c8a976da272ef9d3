"""One ESME connection: framing, bind state, dispatch by command_id, batched writes.

The session owns only per-connection state (bind mode, sequence numbers, deliver_sm in flight);
every decision about accounts, message ids, receipts and faults belongs to the simulator, which
the session reaches through the narrow :class:`Carrier` protocol.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

import structlog

from broker.smpp.constants import INTERFACE_VERSION, MAX_SEQUENCE, CommandId, Status, Tag
from broker.smpp.errors import SmppCodecError
from broker.smpp.pdu import FrameReader, Pdu, decode_pdu, encode_pdu, is_response

log = structlog.get_logger(__name__)


class BindMode(enum.Enum):
    TRANSMITTER = "transmitter"
    RECEIVER = "receiver"
    TRANSCEIVER = "transceiver"

    @property
    def can_submit(self) -> bool:
        return self is not BindMode.RECEIVER

    @property
    def can_receive(self) -> bool:
        return self is not BindMode.TRANSMITTER


BIND_COMMANDS = {
    CommandId.BIND_TRANSMITTER: BindMode.TRANSMITTER,
    CommandId.BIND_RECEIVER: BindMode.RECEIVER,
    CommandId.BIND_TRANSCEIVER: BindMode.TRANSCEIVER,
}


@dataclass(slots=True)
class Delivery:
    """A deliver_sm (receipt or MO) waiting for, or in, a receiver bind.

    ``frame`` is encoded once with sequence_number 0; each send patches in its own.
    """

    system_id: str
    frame: bytes
    kind: str  # "receipts" or "mo", the prefix of its counters
    attempts: int = 0


class Carrier(Protocol):
    """What a session asks of the simulator."""

    @property
    def stalled(self) -> bool: ...
    @property
    def submit_delay(self) -> float: ...
    def session_opened(self, session: SmppSession) -> None: ...
    def session_closed(self, session: SmppSession) -> None: ...
    def check_bind(self, system_id: str, password: str) -> int: ...
    def session_bound(self, session: SmppSession) -> None: ...
    def accept_submit(self, session: SmppSession, pdu: Pdu) -> tuple[int, str]: ...
    def delivery_answered(self, session: SmppSession, delivery: Delivery, status: int) -> None: ...
    def count(self, counter: str) -> None: ...


class SmppSession(asyncio.Protocol):
    """The server side of one SMPP connection."""

    def __init__(self, carrier: Carrier, *, smsc_system_id: str, window: int) -> None:
        self._carrier = carrier
        self._smsc_system_id = smsc_system_id
        self._window = window
        self._reader = FrameReader()
        self._transport: asyncio.Transport | None = None
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._sequence = 0
        self._write_paused = False
        self.system_id: str | None = None
        self.mode: BindMode | None = None
        self.in_flight: dict[int, tuple[Delivery, float]] = {}  # seq -> (delivery, deadline)
        self.closed = False
        self.peer = ""

    # --- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its interface.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._carrier.session_opened(self)
        if self._carrier.stalled:
            transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._out.clear()
        self._carrier.session_closed(self)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._reader.feed(data)
        except SmppCodecError as exc:
            log.warning("smsc_sim.bad_frame", peer=self.peer, error=exc.message)
            self._send(Pdu(CommandId.GENERIC_NACK, 0, exc.status))
            self.close()
            return
        for frame in frames:
            self._handle_frame(frame)
        self.flush()

    def pause_writing(self) -> None:
        # The ESME is not reading: stop reading its submits until it catches up.
        self._write_paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._transport is not None and not self._carrier.stalled:
            self._transport.resume_reading()

    # --- writing --------------------------------------------------------------------------

    def _send(self, pdu: Pdu) -> None:
        self._out.append(encode_pdu(pdu))

    def send_later(self, frame: bytes) -> None:
        """Queue a frame from a timer; all frames queued in one loop iteration go in one write."""
        if self.closed:
            return
        self._out.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        if not self._out or self._transport is None or self._carrier.stalled:
            return
        data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
        self._out.clear()
        self._transport.write(data)

    def close(self) -> None:
        """Write what is queued, then close (no more reading)."""
        self.flush()
        if self._transport is not None and not self.closed:
            self._transport.close()

    def abort(self) -> None:
        """Cut the connection at once, as a carrier that drops its binds."""
        if self._transport is not None and not self.closed:
            self._transport.abort()

    def stall(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.pause_reading()

    def unstall(self) -> None:
        if self._transport is not None and not self.closed:
            if not self._write_paused:
                self._transport.resume_reading()
            self.flush()

    # --- deliver_sm to the ESME -----------------------------------------------------------

    @property
    def has_room(self) -> bool:
        return not self.closed and len(self.in_flight) < self._window

    def send_delivery(self, delivery: Delivery, deadline: float) -> None:
        sequence = self._next_sequence()
        frame = delivery.frame
        self.in_flight[sequence] = (delivery, deadline)
        self.send_later(frame[:12] + sequence.to_bytes(4, "big") + frame[16:])

    def expired(self, now: float) -> list[Delivery]:
        """Remove and return the deliveries whose response is overdue (oldest first)."""
        overdue: list[int] = []
        for sequence, (_delivery, deadline) in self.in_flight.items():
            if deadline > now:
                break
            overdue.append(sequence)
        return [self.in_flight.pop(sequence)[0] for sequence in overdue]

    def take_in_flight(self) -> list[Delivery]:
        deliveries = [delivery for delivery, _deadline in self.in_flight.values()]
        self.in_flight.clear()
        return deliveries

    def _next_sequence(self) -> int:
        self._sequence = 1 if self._sequence >= MAX_SEQUENCE else self._sequence + 1
        return self._sequence

    # --- dispatch -------------------------------------------------------------------------

    def _handle_frame(self, frame: bytes) -> None:
        try:
            pdu = decode_pdu(frame)
        except SmppCodecError as exc:
            command_id = exc.command_id or 0
            if not is_response(command_id):
                self._carrier.count("generic_nacks")
                self._send(Pdu(CommandId.GENERIC_NACK, exc.sequence_number or 0, exc.status))
            return
        handler = _HANDLERS.get(pdu.command_id)
        if handler is not None:
            handler(self, pdu)
        elif not is_response(pdu.command_id):
            self._carrier.count("generic_nacks")
            self._send(Pdu(CommandId.GENERIC_NACK, pdu.sequence_number, Status.ESME_RINVCMDID))

    def _on_bind(self, pdu: Pdu) -> None:
        mode = BIND_COMMANDS[CommandId(pdu.command_id)]
        if self.mode is not None:
            self._send(pdu.response(Status.ESME_RALYBND))
            return
        system_id = str(pdu.body.get("system_id", ""))
        status = self._carrier.check_bind(system_id, str(pdu.body.get("password", "")))
        response = pdu.response(status, system_id=self._smsc_system_id)
        if status:
            self._send(response)
            log.info("smsc_sim.bind_rejected", peer=self.peer, system_id=system_id, status=status)
            self.close()
            return
        response.tlvs[Tag.SC_INTERFACE_VERSION] = bytes([INTERFACE_VERSION])
        self._send(response)
        self.mode = mode
        self.system_id = system_id
        log.info("smsc_sim.bound", peer=self.peer, system_id=system_id, mode=mode.value)
        self._carrier.session_bound(self)

    def _on_submit(self, pdu: Pdu) -> None:
        if self.mode is None or not self.mode.can_submit:
            self._send(pdu.response(Status.ESME_RINVBNDSTS))
            return
        status, message_id = self._carrier.accept_submit(self, pdu)
        # A refused submit_sm_resp goes without a body (SMPP 3.4 section 4.4.2).
        response = pdu.response(status) if status else pdu.response(0, message_id=message_id)
        delay = self._carrier.submit_delay
        if delay > 0:
            frame = encode_pdu(response)
            asyncio.get_running_loop().call_later(delay, self.send_later, frame)
        else:
            self._send(response)

    def _on_deliver_sm_resp(self, pdu: Pdu) -> None:
        entry = self.in_flight.pop(pdu.sequence_number, None)
        if entry is not None:
            self._carrier.delivery_answered(self, entry[0], pdu.command_status)

    def _on_enquire_link(self, pdu: Pdu) -> None:
        self._send(pdu.response())

    def _on_unbind(self, pdu: Pdu) -> None:
        self._send(pdu.response())
        self.close()

    def _ignore(self, pdu: Pdu) -> None:
        """Responses to nothing we asked, and the ESME's own unbind_resp."""


_HANDLERS: dict[int, Callable[[SmppSession, Pdu], None]] = {
    CommandId.BIND_TRANSMITTER: SmppSession._on_bind,
    CommandId.BIND_RECEIVER: SmppSession._on_bind,
    CommandId.BIND_TRANSCEIVER: SmppSession._on_bind,
    CommandId.SUBMIT_SM: SmppSession._on_submit,
    CommandId.DELIVER_SM_RESP: SmppSession._on_deliver_sm_resp,
    CommandId.GENERIC_NACK: SmppSession._on_deliver_sm_resp,
    CommandId.ENQUIRE_LINK: SmppSession._on_enquire_link,
    CommandId.ENQUIRE_LINK_RESP: SmppSession._ignore,
    CommandId.UNBIND: SmppSession._on_unbind,
    CommandId.UNBIND_RESP: SmppSession._ignore,
}
