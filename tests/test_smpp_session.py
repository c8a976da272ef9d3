"""The pure SMPP session state machine, driven without sockets."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from broker.smpp.constants import MAX_SEQUENCE, CommandId, Status
from broker.smpp.errors import SmppCodecError, SmppStateError
from broker.smpp.pdu import Pdu
from broker.smpp.session import (
    BindMode,
    Deliver,
    Ignored,
    Reply,
    Response,
    Session,
    SessionState,
)

S = SessionState


def bound(mode: BindMode = "trx", window: int = 10) -> Session:
    session = Session(window=window)
    bind = session.bind(mode, system_id="esme", password="pw")
    event = session.receive(bind.response(system_id="SMSC"))
    assert isinstance(event, Response)
    return session


@pytest.mark.parametrize(
    ("mode", "command_id", "state"),
    [
        ("tx", CommandId.BIND_TRANSMITTER, S.BOUND_TX),
        ("rx", CommandId.BIND_RECEIVER, S.BOUND_RX),
        ("trx", CommandId.BIND_TRANSCEIVER, S.BOUND_TRX),
    ],
)
def test_bind_success(mode: BindMode, command_id: int, state: SessionState) -> None:
    session = Session()
    bind = session.bind(mode, system_id="esme", password="pw", system_type="VMA")
    assert bind.command_id == command_id
    assert bind.sequence_number == 1
    assert bind.body["system_type"] == "VMA"
    assert bind.body["interface_version"] == 0x34
    assert session.state is S.BINDING
    event = session.receive(bind.response(system_id="SMSC"))
    assert event == Response(command_id, bind.response(system_id="SMSC"))
    assert session.state is state


def test_bind_refused_returns_to_open() -> None:
    session = Session()
    bind = session.bind("trx", system_id="esme", password="bad")
    event = session.receive(bind.response(Status.ESME_RINVPASWD))
    assert isinstance(event, Response) and event.pdu.command_status == Status.ESME_RINVPASWD
    assert session.state is S.OPEN


def test_bind_answered_by_generic_nack() -> None:
    session = Session()
    bind = session.bind("tx", system_id="esme", password="pw")
    event = session.receive(Pdu(CommandId.GENERIC_NACK, bind.sequence_number, 3))
    assert event == Response(CommandId.BIND_TRANSMITTER, Pdu(CommandId.GENERIC_NACK, 1, 3))
    assert session.state is S.OPEN


ILLEGAL_SENDS = [
    pytest.param(S.OPEN, CommandId.SUBMIT_SM, id="submit before bind"),
    pytest.param(S.OPEN, CommandId.ENQUIRE_LINK, id="enquire_link before bind"),
    pytest.param(S.BOUND_RX, CommandId.SUBMIT_SM, id="submit on receiver"),
    pytest.param(S.BOUND_RX, CommandId.DATA_SM, id="data_sm on receiver"),
    pytest.param(S.UNBINDING, CommandId.SUBMIT_SM, id="submit while unbinding"),
    pytest.param(S.CLOSED, CommandId.ENQUIRE_LINK, id="anything when closed"),
    pytest.param(S.BOUND_TRX, CommandId.DELIVER_SM, id="deliver_sm is not ours to send"),
]


def session_in(state: SessionState) -> Session:
    if state is S.OPEN:
        return Session()
    mode: BindMode = "rx" if state is S.BOUND_RX else "trx"
    session = bound(mode)
    if state is S.UNBINDING:
        session.unbind()
    elif state is S.CLOSED:
        session.close()
    return session


@pytest.mark.parametrize(("state", "command_id"), ILLEGAL_SENDS)
def test_illegal_sends_raise(state: SessionState, command_id: int) -> None:
    session = session_in(state)
    assert session.state is state
    with pytest.raises(SmppStateError):
        session.request(command_id)


def test_illegal_transitions_raise() -> None:
    session = bound()
    with pytest.raises(SmppStateError):
        session.bind("trx", system_id="x", password="y")
    session.close()
    with pytest.raises(SmppStateError):
        session.unbind()
    assert session.state is S.CLOSED


def test_window_limits_submits_but_not_enquire_link() -> None:
    session = bound(window=2)
    first = session.request(CommandId.SUBMIT_SM, {"short_message": b"a"})
    second = session.request(CommandId.SUBMIT_SM)
    with pytest.raises(SmppStateError, match="window"):
        session.request(CommandId.SUBMIT_SM)
    link = session.request(CommandId.ENQUIRE_LINK)
    assert session.in_flight == 2
    assert session.outstanding == 3
    session.receive(second.response(message_id="m2"))
    assert session.in_flight == 1
    third = session.request(CommandId.SUBMIT_SM)
    assert (
        len(
            {
                first.sequence_number,
                second.sequence_number,
                link.sequence_number,
                third.sequence_number,
            }
        )
        == 4
    )


def test_forget_frees_the_window() -> None:
    session = bound(window=1)
    submit = session.request(CommandId.SUBMIT_SM)
    assert session.forget(submit.sequence_number)
    assert not session.forget(submit.sequence_number)
    assert session.in_flight == 0
    late = session.receive(submit.response(message_id="late"))
    assert isinstance(late, Ignored)


def test_sequence_numbers_wrap_and_skip_outstanding() -> None:
    session = bound()
    session._next_sequence = MAX_SEQUENCE - 1  # noqa: SLF001 - drive the wrap directly
    a = session.request(CommandId.SUBMIT_SM)
    b = session.request(CommandId.SUBMIT_SM)
    c = session.request(CommandId.SUBMIT_SM)
    assert [a.sequence_number, b.sequence_number, c.sequence_number] == [
        MAX_SEQUENCE - 1,
        MAX_SEQUENCE,
        1,
    ]
    session._next_sequence = MAX_SEQUENCE  # noqa: SLF001
    d = session.request(CommandId.SUBMIT_SM)
    assert d.sequence_number == 2  # MAX_SEQUENCE and 1 are still outstanding


def deliver_sm(seq: int = 77) -> Pdu:
    return Pdu(CommandId.DELIVER_SM, seq, body={"esm_class": 4, "short_message": b"id:1"})


INCOMING = [
    pytest.param(S.BOUND_TRX, deliver_sm(), Deliver(deliver_sm()), id="deliver_sm on trx"),
    pytest.param(S.BOUND_RX, deliver_sm(), Deliver(deliver_sm()), id="deliver_sm on rx"),
    pytest.param(
        S.BOUND_TX,
        deliver_sm(),
        Reply(Pdu(CommandId.DELIVER_SM_RESP, 77, Status.ESME_RINVBNDSTS, {"message_id": ""})),
        id="deliver_sm on tx",
    ),
    pytest.param(
        S.UNBINDING,
        Pdu(CommandId.DATA_SM, 5),
        Reply(Pdu(CommandId.DATA_SM_RESP, 5, Status.ESME_RINVBNDSTS, {"message_id": ""})),
        id="data_sm while unbinding",
    ),
    pytest.param(
        S.BOUND_TRX,
        Pdu(CommandId.ENQUIRE_LINK, 9),
        Reply(Pdu(CommandId.ENQUIRE_LINK_RESP, 9)),
        id="enquire_link",
    ),
    pytest.param(
        S.BOUND_TRX,
        Pdu(CommandId.UNBIND, 10),
        Reply(Pdu(CommandId.UNBIND_RESP, 10), close=True),
        id="unbind from SMSC",
    ),
    pytest.param(
        S.BOUND_TRX,
        Pdu(0x00000077, 11),
        Reply(Pdu(CommandId.GENERIC_NACK, 11, Status.ESME_RINVCMDID)),
        id="unknown command",
    ),
    pytest.param(
        S.BOUND_TRX,
        Pdu(CommandId.SUBMIT_SM, 12),
        Reply(Pdu(CommandId.SUBMIT_SM_RESP, 12, Status.ESME_RINVCMDID)),
        id="submit_sm sent to an ESME",
    ),
    pytest.param(
        S.BOUND_TRX,
        Pdu(CommandId.ALERT_NOTIFICATION, 13),
        Ignored(Pdu(CommandId.ALERT_NOTIFICATION, 13), "no response defined for this command"),
        id="alert_notification",
    ),
    pytest.param(
        S.BOUND_TRX,
        Pdu(CommandId.SUBMIT_SM_RESP, 999),
        Ignored(Pdu(CommandId.SUBMIT_SM_RESP, 999), "response to no outstanding request"),
        id="stray response",
    ),
    pytest.param(
        S.BOUND_TRX,
        Pdu(0x80000077, 998),
        Ignored(Pdu(0x80000077, 998), "response to no outstanding request"),
        id="stray unknown response",
    ),
    pytest.param(
        S.CLOSED,
        Pdu(CommandId.ENQUIRE_LINK, 1),
        Ignored(Pdu(CommandId.ENQUIRE_LINK, 1), "session closed"),
        id="closed",
    ),
]


@pytest.mark.parametrize(("state", "pdu", "expected"), INCOMING)
def test_incoming(state: SessionState, pdu: Pdu, expected: object) -> None:
    session = session_in(state) if state is not S.BOUND_TX else bound("tx")
    assert session.receive(pdu) == expected


def test_unbind_from_smsc_moves_to_unbinding() -> None:
    session = bound()
    session.receive(Pdu(CommandId.UNBIND, 3))
    assert session.state is S.UNBINDING
    assert session.close() == []
    assert session.state is S.CLOSED


def test_our_unbind_completes_on_unbind_resp() -> None:
    session = bound()
    unbind = session.unbind()
    assert session.state is S.UNBINDING
    assert isinstance(session.receive(unbind.response()), Response)
    assert session.state is S.CLOSED


def test_vendor_status_and_generic_nack_end_a_submit() -> None:
    session = bound()
    a = session.request(CommandId.SUBMIT_SM)
    b = session.request(CommandId.SUBMIT_SM)
    vendor = session.receive(a.response(0x400))
    nack = session.receive(Pdu(CommandId.GENERIC_NACK, b.sequence_number, 0x03))
    assert vendor == Response(
        CommandId.SUBMIT_SM, Pdu(CommandId.SUBMIT_SM_RESP, a.sequence_number, 0x400)
    )
    assert isinstance(nack, Response) and nack.pdu.command_status == 3
    assert session.in_flight == 0
    assert session.is_bound


def test_answer_deliver() -> None:
    session = bound()
    assert session.answer(deliver_sm()) == Pdu(CommandId.DELIVER_SM_RESP, 77, 0, {"message_id": ""})
    assert session.answer(deliver_sm(), Status.ESME_RX_T_APPN).command_status == 0x64


def test_malformed_pdus() -> None:
    session = bound()
    submit = session.request(CommandId.SUBMIT_SM)
    bad_request = SmppCodecError("x", status=2, command_id=CommandId.DELIVER_SM, sequence_number=4)
    assert session.reply_to_malformed(bad_request) == Pdu(CommandId.GENERIC_NACK, 4, 2)
    bad_response = SmppCodecError(
        "x", status=1, command_id=CommandId.SUBMIT_SM_RESP, sequence_number=submit.sequence_number
    )
    assert session.reply_to_malformed(bad_response) is None
    ended = session.fail_malformed_response(bad_response)
    assert ended is not None and ended.pdu.command_status == 1
    assert session.in_flight == 0
    assert session.reply_to_malformed(SmppCodecError("no header")) is None
    assert session.fail_malformed_response(SmppCodecError("no header")) is None


def test_close_reports_lost_requests() -> None:
    session = bound()
    a = session.request(CommandId.SUBMIT_SM)
    b = session.request(CommandId.ENQUIRE_LINK)
    assert sorted(session.close()) == sorted([a.sequence_number, b.sequence_number])
    assert session.in_flight == 0


class SessionMachine(RuleBasedStateMachine):
    """Any interleaving of sends, responses, SMSC requests and timeouts keeps the invariants."""

    def __init__(self) -> None:
        super().__init__()
        self.session = Session(window=3)
        self.pending: dict[int, Pdu] = {}

    @precondition(lambda self: self.session.state is S.OPEN)
    @rule(mode=st.sampled_from(["tx", "rx", "trx"]))
    def bind(self, mode: BindMode) -> None:
        pdu = self.session.bind(mode, system_id="a", password="b")
        self.pending[pdu.sequence_number] = pdu

    @rule(command_id=st.sampled_from([CommandId.SUBMIT_SM, CommandId.ENQUIRE_LINK]))
    def send(self, command_id: int) -> None:
        try:
            pdu = self.session.request(command_id)
        except SmppStateError:
            allowed = self.session.can_transmit or (
                self.session.is_bound and command_id == CommandId.ENQUIRE_LINK
            )
            assert not allowed or self.session.in_flight == self.session.window
            return
        assert pdu.sequence_number not in self.pending
        assert 1 <= pdu.sequence_number <= MAX_SEQUENCE
        self.pending[pdu.sequence_number] = pdu

    @precondition(lambda self: self.session.is_bound)
    @rule()
    def unbind(self) -> None:
        pdu = self.session.unbind()
        self.pending[pdu.sequence_number] = pdu

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data(), status=st.sampled_from([0, 0x58, 0x400]))
    def respond(self, data: st.DataObject, status: int) -> None:
        seq = data.draw(st.sampled_from(sorted(self.pending)))
        request = self.pending.pop(seq)
        event = self.session.receive(request.response(status))
        if self.session.state is not S.CLOSED or request.command_id == CommandId.UNBIND:
            assert event == Response(request.command_id, request.response(status))

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data())
    def time_out(self, data: st.DataObject) -> None:
        seq = data.draw(st.sampled_from(sorted(self.pending)))
        self.pending.pop(seq)
        self.session.forget(seq)

    @rule(command_id=st.sampled_from([CommandId.DELIVER_SM, CommandId.ENQUIRE_LINK, 0x55]))
    def smsc_sends(self, command_id: int) -> None:
        event = self.session.receive(Pdu(command_id, 4242))
        if self.session.state is S.CLOSED:
            assert isinstance(event, Ignored)
        elif command_id == CommandId.DELIVER_SM and self.session.can_receive:
            assert isinstance(event, Deliver)
        else:
            assert isinstance(event, Reply) and event.pdu.sequence_number == 4242

    @rule()
    def connection_lost(self) -> None:
        lost = self.session.close()
        assert sorted(lost) == sorted(self.pending)
        self.pending.clear()

    @invariant()
    def window_respected(self) -> None:
        assert 0 <= self.session.in_flight <= self.session.window
        assert self.session.outstanding == len(self.pending) or self.session.state is S.CLOSED


TestSessionMachine = SessionMachine.TestCase
