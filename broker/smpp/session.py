"""The ESME side of one SMPP 3.4 session as a pure state machine (no I/O, no clock).

The transport feeds it every decoded PDU and sends whatever it returns; the session decides
what is legal in which bind state, numbers requests, matches responses to requests, and says
how to answer each PDU the SMSC sends. Timers belong to the transport.
"""

from __future__ import annotations

from enum import Enum
from typing import Final, Literal, NamedTuple

from broker.smpp.constants import INTERFACE_VERSION, MAX_SEQUENCE, RESPONSE_BIT, CommandId, Status
from broker.smpp.errors import SmppCodecError, SmppStateError
from broker.smpp.pdu import BodyValue, Pdu

__all__ = [
    "BindMode",
    "Deliver",
    "Event",
    "Ignored",
    "Reply",
    "Response",
    "Session",
    "SessionState",
]

BindMode = Literal["tx", "rx", "trx"]


class SessionState(Enum):
    OPEN = "open"
    BINDING = "binding"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBINDING = "unbinding"
    CLOSED = "closed"


_S = SessionState
_BOUND: Final = frozenset({_S.BOUND_TX, _S.BOUND_RX, _S.BOUND_TRX})
_TRANSITIONS: Final[dict[SessionState, frozenset[SessionState]]] = {
    _S.OPEN: frozenset({_S.BINDING, _S.CLOSED}),
    _S.BINDING: frozenset({_S.OPEN, *_BOUND, _S.CLOSED}),
    _S.BOUND_TX: frozenset({_S.UNBINDING, _S.CLOSED}),
    _S.BOUND_RX: frozenset({_S.UNBINDING, _S.CLOSED}),
    _S.BOUND_TRX: frozenset({_S.UNBINDING, _S.CLOSED}),
    _S.UNBINDING: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset(),
}
_BIND_COMMAND: Final[dict[str, tuple[int, SessionState]]] = {
    "tx": (CommandId.BIND_TRANSMITTER, _S.BOUND_TX),
    "rx": (CommandId.BIND_RECEIVER, _S.BOUND_RX),
    "trx": (CommandId.BIND_TRANSCEIVER, _S.BOUND_TRX),
}
_BIND_TARGET: Final = {command: state for command, state in _BIND_COMMAND.values()}
_C = CommandId
_TX_REQUESTS: Final = frozenset(
    {_C.SUBMIT_SM, _C.DATA_SM, _C.QUERY_SM, _C.CANCEL_SM, _C.REPLACE_SM, _C.ENQUIRE_LINK, _C.UNBIND}
)
# What this session may send in each state (binds go through bind(), unbind through unbind()).
_MAY_SEND: Final[dict[SessionState, frozenset[int]]] = {
    _S.BOUND_TX: _TX_REQUESTS,
    _S.BOUND_TRX: _TX_REQUESTS,
    _S.BOUND_RX: frozenset({_C.ENQUIRE_LINK, _C.UNBIND}),
}
_RECEIVING: Final = frozenset({_S.BOUND_RX, _S.BOUND_TRX})
# Requests that occupy the window; enquire_link and unbind must pass even when it is full.
_WINDOWED: Final = frozenset({_C.SUBMIT_SM, _C.DATA_SM, _C.QUERY_SM, _C.CANCEL_SM, _C.REPLACE_SM})
# Requests an SMSC has no business sending to an ESME.
_NOT_FOR_ESME: Final = frozenset(
    {
        _C.BIND_TRANSMITTER,
        _C.BIND_RECEIVER,
        _C.BIND_TRANSCEIVER,
        _C.SUBMIT_SM,
        _C.SUBMIT_MULTI,
        _C.QUERY_SM,
        _C.CANCEL_SM,
        _C.REPLACE_SM,
    }
)
# Requests without a response PDU in SMPP 3.4.
_NO_RESPONSE: Final = frozenset({_C.OUTBIND, _C.ALERT_NOTIFICATION})


class Reply(NamedTuple):
    """Send ``pdu`` now; close the connection after it when ``close`` is set."""

    pdu: Pdu
    close: bool = False


class Response(NamedTuple):
    """The answer to an outstanding request (a generic_nack counts: its status says why)."""

    request_command_id: int
    pdu: Pdu


class Deliver(NamedTuple):
    """A deliver_sm / data_sm for the application; answer it with :meth:`Session.answer`."""

    pdu: Pdu


class Ignored(NamedTuple):
    pdu: Pdu
    reason: str


Event = Reply | Response | Deliver | Ignored


class Session:
    """One bind's protocol state: bind state, sequence numbers, outstanding requests."""

    __slots__ = (
        "_bind_target",
        "_next_sequence",
        "_outstanding",
        "_state",
        "_window_used",
        "window",
    )

    def __init__(self, *, window: int = 10) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self._state = _S.OPEN
        self._next_sequence = 1
        self._outstanding: dict[int, int] = {}
        self._window_used = 0
        self._bind_target = _S.BOUND_TRX

    # --- state ---------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def is_bound(self) -> bool:
        return self._state in _BOUND

    @property
    def can_transmit(self) -> bool:
        return self._state is _S.BOUND_TX or self._state is _S.BOUND_TRX

    @property
    def can_receive(self) -> bool:
        return self._state in _RECEIVING

    @property
    def in_flight(self) -> int:
        """Windowed requests (submit_sm and the like) awaiting their response."""
        return self._window_used

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)

    def _set_state(self, new: SessionState) -> None:
        if new is self._state:
            return
        if new not in _TRANSITIONS[self._state]:
            raise SmppStateError(
                f"illegal SMPP session transition {self._state.value} -> {new.value}"
            )
        self._state = new

    # --- outgoing ------------------------------------------------------------------------

    def _sequence(self) -> int:
        seq = self._next_sequence
        while seq in self._outstanding:  # only after a wrap with an ancient request pending
            seq = seq + 1 if seq < MAX_SEQUENCE else 1
        self._next_sequence = seq + 1 if seq < MAX_SEQUENCE else 1
        return seq

    def bind(
        self,
        mode: BindMode,
        *,
        system_id: str,
        password: str,
        system_type: str = "",
        addr_ton: int = 0,
        addr_npi: int = 0,
        address_range: str = "",
    ) -> Pdu:
        command_id, target = _BIND_COMMAND[mode]
        if self._state is not _S.OPEN:
            raise SmppStateError(f"cannot bind in state {self._state.value}")
        self._set_state(_S.BINDING)
        self._bind_target = target
        seq = self._sequence()
        self._outstanding[seq] = command_id
        body: dict[str, BodyValue] = {
            "system_id": system_id,
            "password": password,
            "system_type": system_type,
            "interface_version": INTERFACE_VERSION,
            "addr_ton": addr_ton,
            "addr_npi": addr_npi,
            "address_range": address_range,
        }
        return Pdu(command_id, seq, 0, body)

    def request(
        self,
        command_id: int,
        body: dict[str, BodyValue] | None = None,
        tlvs: dict[int, bytes] | None = None,
    ) -> Pdu:
        """A numbered request, checked against the bind state and the window."""
        allowed = _MAY_SEND.get(self._state)
        if allowed is None or command_id not in allowed:
            raise SmppStateError(
                f"cannot send command 0x{command_id:08x} in state {self._state.value}"
            )
        if command_id == _C.UNBIND:
            return self.unbind()
        if command_id in _WINDOWED:
            if self._window_used >= self.window:
                raise SmppStateError("window full")
            self._window_used += 1
        seq = self._sequence()
        self._outstanding[seq] = command_id
        return Pdu(command_id, seq, 0, body if body is not None else {}, tlvs if tlvs else {})

    def unbind(self) -> Pdu:
        if self._state not in _BOUND:
            raise SmppStateError(f"cannot unbind in state {self._state.value}")
        self._set_state(_S.UNBINDING)
        seq = self._sequence()
        self._outstanding[seq] = _C.UNBIND
        return Pdu(_C.UNBIND, seq)

    def forget(self, sequence_number: int) -> bool:
        """Drop an outstanding request (its response timed out). True if it was outstanding."""
        command_id = self._outstanding.pop(sequence_number, None)
        if command_id is None:
            return False
        if command_id in _WINDOWED:
            self._window_used -= 1
        return True

    def close(self) -> list[int]:
        """The connection is gone: CLOSED, and the sequence numbers that got no response."""
        self._set_state(_S.CLOSED)
        lost = list(self._outstanding)
        self._outstanding.clear()
        self._window_used = 0
        return lost

    # --- incoming ------------------------------------------------------------------------

    def receive(self, pdu: Pdu) -> Event:
        """What a PDU from the SMSC means, and what to send back."""
        if self._state is _S.CLOSED:
            return Ignored(pdu, "session closed")
        command_id = pdu.command_id
        if command_id & RESPONSE_BIT:
            return self._receive_response(pdu)
        if command_id == _C.DELIVER_SM or command_id == _C.DATA_SM:
            if self._state in _RECEIVING:
                return Deliver(pdu)
            return Reply(pdu.response(Status.ESME_RINVBNDSTS, message_id=""))
        if command_id == _C.ENQUIRE_LINK:
            return Reply(Pdu(_C.ENQUIRE_LINK_RESP, pdu.sequence_number))
        if command_id == _C.UNBIND:
            if self._state in _BOUND:
                self._set_state(_S.UNBINDING)
            return Reply(Pdu(_C.UNBIND_RESP, pdu.sequence_number), close=True)
        if command_id in _NO_RESPONSE:
            return Ignored(pdu, "no response defined for this command")
        if command_id in _NOT_FOR_ESME:
            return Reply(Pdu(command_id | RESPONSE_BIT, pdu.sequence_number, Status.ESME_RINVCMDID))
        return Reply(Pdu(_C.GENERIC_NACK, pdu.sequence_number, Status.ESME_RINVCMDID))

    def _receive_response(self, pdu: Pdu) -> Event:
        request_id = self._outstanding.pop(pdu.sequence_number, None)
        if request_id is None:
            return Ignored(pdu, "response to no outstanding request")
        if request_id in _WINDOWED:
            self._window_used -= 1
        elif request_id in _BIND_TARGET:
            self._set_state(self._bind_target if pdu.command_status == 0 else _S.OPEN)
        elif request_id == _C.UNBIND:
            self._set_state(_S.CLOSED)
        return Response(request_id, pdu)

    def answer(self, request: Pdu, status: int = Status.ESME_ROK) -> Pdu:
        """The response to a delivered deliver_sm / data_sm, once the application is done."""
        return request.response(status, message_id="")

    def reply_to_malformed(self, error: SmppCodecError) -> Pdu | None:
        """generic_nack for a request that could not be decoded; None for a bad response."""
        command_id, seq = error.command_id, error.sequence_number
        if command_id is None or seq is None or command_id & RESPONSE_BIT:
            return None
        return Pdu(_C.GENERIC_NACK, seq, error.status)

    def fail_malformed_response(self, error: SmppCodecError) -> Response | None:
        """A response that could not be decoded still ends its request (as a failure)."""
        command_id, seq = error.command_id, error.sequence_number
        if command_id is None or seq is None or not command_id & RESPONSE_BIT:
            return None
        event = self._receive_response(Pdu(command_id, seq, error.status or Status.ESME_RSYSERR))
        return event if isinstance(event, Response) else None
