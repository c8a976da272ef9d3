"""The simulator's pure parts: option parsing, outcomes, ids, receipt text, fault validation."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.errors import InputError
from broker.smpp.constants import MessageState, Tag
from broker.smpp.receipt import canonical_message_id, parse_receipt
from smsc_sim import OUTCOMES, Faults, SimConfig, SubmitRecord
from smsc_sim.config import parse_account, parse_delay, parse_rule, parse_status
from smsc_sim.faults import parse_faults
from smsc_sim.ids import MessageIdGenerator, receipt_id
from smsc_sim.outcomes import OutcomePicker, longest_suffix_match, parse_outcomes
from smsc_sim.receipts import build_receipt, message_excerpt, receipt_date, receipt_text

RECEIPT = re.compile(
    r"id:(?P<id>\S+) sub:001 dlvrd:(?P<dlvrd>00[01]) submit date:(?P<submit>\d{10}(\d\d)?) "
    r"done date:(?P<done>\d{10}(\d\d)?) stat:(?P<stat>[A-Z]{7}) err:(?P<err>\d{3}) "
    r"text:(?P<text>[ -~]{0,20})"
)

# --- option parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "weights"), [
    ("DELIVRD", {"DELIVRD": 1.0}),
    ("DELIVRD=0.9,UNDELIV=0.1", {"DELIVRD": 0.9, "UNDELIV": 0.1}),
    (" delivrd = 3 , rejectd=1 ,", {"DELIVRD": 3.0, "REJECTD": 1.0}),
    ("EXPIRED=1,EXPIRED=2", {"EXPIRED": 3.0}),
    ("DELIVRD=1,UNDELIV=0", {"DELIVRD": 1.0, "UNDELIV": 0.0}),
])  # fmt: skip
def test_parse_outcomes(text: str, weights: dict[str, float]) -> None:
    assert parse_outcomes(text) == weights


@pytest.mark.parametrize("text", ["", ",", "LOST=1", "DELIVRD=x", "DELIVRD=-1", "DELIVRD=0",
                                  "DELIVRD=nan"])  # fmt: skip
def test_parse_outcomes_refuses(text: str) -> None:
    with pytest.raises(InputError) as error:
        parse_outcomes(text)
    assert error.value.field == "outcomes"


@pytest.mark.parametrize(("text", "delay"), [
    ("0", (0.0, 0.0)), ("0.1", (0.1, 0.1)), ("0.1-0.5", (0.1, 0.5)), (" 2-2 ", (2.0, 2.0)),
])  # fmt: skip
def test_parse_delay(text: str, delay: tuple[float, float]) -> None:
    assert parse_delay(text) == delay


@pytest.mark.parametrize("text", ["", "x", "0.5-0.1", "1-", "-1", "inf", "0-inf", "nan"])
def test_parse_delay_refuses(text: str) -> None:
    with pytest.raises(InputError):
        parse_delay(text)


@pytest.mark.parametrize(("text", "pair"), [
    ("smsbroker:secret", ("smsbroker", "secret")), ("a:b:c", ("a", "b:c")), ("a:", ("a", "")),
])  # fmt: skip
def test_parse_account(text: str, pair: tuple[str, str]) -> None:
    assert parse_account(text) == pair


@pytest.mark.parametrize("text", ["nocolon", ":pw", "sixteen-chars-id:pw", "id:ninechars"])
def test_parse_account_refuses(text: str) -> None:
    with pytest.raises(InputError):
        parse_account(text)


@pytest.mark.parametrize(("text", "status"), [
    ("88", 0x58), ("0x58", 0x58), ("0X400", 0x400), ("0xFFFFFFFF", 0xFFFFFFFF),
])  # fmt: skip
def test_parse_status(text: str, status: int) -> None:
    assert parse_status(text) == status


@pytest.mark.parametrize("text", ["0", "-1", "0x100000000", "ok", "", "1.5"])
def test_parse_status_refuses(text: str) -> None:
    with pytest.raises(InputError):
        parse_status(text)


@pytest.mark.parametrize("text", ["=UNDELIV", "00=", "00UNDELIV"])
def test_parse_rule_refuses(text: str) -> None:
    with pytest.raises(InputError):
        parse_rule(text)


@pytest.mark.parametrize("settings", [
    {"port": 65536}, {"accounts": {}}, {"accounts": {"": "pw"}}, {"accounts": {"id": "ninechars"}},
    {"receipt_delay": (0.2, 0.1)}, {"receipt_delay": (-1.0, 0.0)}, {"outcomes": {}},
    {"outcomes": {"DELIVRD": 0}}, {"outcomes": {"LOST": 1}}, {"outcome_rules": {"": "UNDELIV"}},
    {"outcome_rules": {"00": "FINE"}}, {"submit_status_rules": {"13": 0}},
    {"message_id_format": "base64"}, {"receipt_id_decimal": True, "message_id_format": "dec"},
    {"receipt_max_attempts": 0}, {"response_timeout": 0}, {"deliver_window": 0},
    {"receipt_retry_delay": -1}, {"smsc_system_id": ""},
])  # fmt: skip
def test_config_refuses_bad_values(settings: dict[str, object]) -> None:
    with pytest.raises(InputError):
        SimConfig(**settings)  # type: ignore[arg-type]


def test_config_normalizes_outcome_names() -> None:
    config = SimConfig(outcomes={"delivrd": 1}, outcome_rules={"00": "undeliv"})
    assert (config.outcomes, config.outcome_rules) == ({"DELIVRD": 1}, {"00": "UNDELIV"})


# --- outcomes ------------------------------------------------------------------------------


@pytest.mark.parametrize(("destination", "outcome"), [
    ("4915100000", "EXPIRED"), ("4915120000", "UNDELIV"), ("4915120001", "DELIVRD"),
    ("0000", "UNDELIV"), ("", "DELIVRD"),
])  # fmt: skip
def test_rules_beat_weights_and_longest_suffix_wins(destination: str, outcome: str) -> None:
    picker = OutcomePicker({"DELIVRD": 1}, {"0000": "UNDELIV", "00000": "EXPIRED"})
    assert picker.pick(destination).stat == outcome


def test_weights_are_followed() -> None:
    picker = OutcomePicker({"DELIVRD": 3, "UNDELIV": 1}, seed=1)
    drawn = Counter(picker.pick("1").stat for _ in range(4000))
    assert set(drawn) == {"DELIVRD", "UNDELIV"}
    assert drawn["DELIVRD"] > 2 * drawn["UNDELIV"]


@given(st.dictionaries(st.sampled_from(sorted(OUTCOMES)), st.floats(0, 10), min_size=1),
       st.text("0123456789", max_size=15))  # fmt: skip
def test_picker_only_draws_weighted_outcomes(weights: dict[str, float], destination: str) -> None:
    if sum(weights.values()) <= 0:
        with pytest.raises(InputError):
            OutcomePicker(weights)
        return
    picker = OutcomePicker(weights, seed=0)
    for _ in range(20):
        assert weights[picker.pick(destination).stat] > 0


@given(st.dictionaries(st.text("0123456789", min_size=1, max_size=5),
                       st.sampled_from(sorted(OUTCOMES)), max_size=5),
       st.text("0123456789", max_size=15))  # fmt: skip
def test_suffix_rules_decide_when_they_match(rules: dict[str, str], destination: str) -> None:
    picker = OutcomePicker({"DELIVRD": 1, "UNDELIV": 1}, rules, seed=0)
    matching = [suffix for suffix in rules if destination.endswith(suffix)]
    if matching:
        best = max(matching, key=len)
        assert longest_suffix_match(rules, destination) == best
        assert picker.pick(destination).stat == rules[best]
    else:
        assert longest_suffix_match(rules, destination) is None


@given(st.dictionaries(st.sampled_from(sorted(OUTCOMES)), st.integers(0, 100), min_size=1))
def test_parse_outcomes_reads_what_it_is_given(weights: dict[str, int]) -> None:
    text = ",".join(f"{name}={weight}" for name, weight in weights.items())
    if sum(weights.values()) == 0:
        with pytest.raises(InputError):
            parse_outcomes(text)
    else:
        assert parse_outcomes(text) == {k: float(v) for k, v in weights.items()}


@given(st.floats(0, 1e6), st.floats(0, 1e6))
def test_parse_delay_accepts_any_ordered_pair(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert parse_delay(f"{low!r}-{high!r}") == (low, high)


# --- ids -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "pattern"), [
    ("hex", r"[0-9a-f]{10,}"), ("dec", r"[1-9]\d{10,}"),
    ("uuid", r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"),
])  # fmt: skip
def test_message_ids_have_their_shape_and_are_unique(fmt: str, pattern: str) -> None:
    generator = MessageIdGenerator(fmt)
    ids = [generator.next_id() for _ in range(5000)]
    assert all(re.fullmatch(pattern, message_id) for message_id in ids)
    assert len(set(ids)) == len(ids)
    assert all(len(message_id) <= 64 for message_id in ids)


@given(st.integers(1, 2**64))
def test_receipt_id_decimal_is_the_same_number(number: int) -> None:
    assert int(receipt_id(f"{number:x}", decimal=True)) == number
    assert receipt_id(f"{number:x}", decimal=False) == f"{number:x}"


# --- receipt text and PDU ------------------------------------------------------------------


@pytest.mark.parametrize(("timestamp", "seconds", "text"), [
    (0.0, False, "7001010000"), (0.0, True, "700101000000"),
    (1767225599.0, False, "2512312359"), (1767225599.0, True, "251231235959"),
])  # fmt: skip
def test_receipt_date_is_utc(timestamp: float, seconds: bool, text: str) -> None:
    assert receipt_date(timestamp, seconds=seconds) == text


def test_receipt_text_example() -> None:
    text = receipt_text("7a1f", OUTCOMES["UNDELIV"], submitted_at=0.0, done_at=60.0,
                        excerpt="hello")  # fmt: skip
    assert text == (
        "id:7a1f sub:001 dlvrd:000 submit date:7001010000 done date:7001010001 "
        "stat:UNDELIV err:001 text:hello"
    )


def record(short_message: bytes, data_coding: int = 0, esm_class: int = 0,
           tlvs: dict[int, bytes] | None = None) -> SubmitRecord:  # fmt: skip
    return SubmitRecord(
        message_id="abc", system_id="s", source_addr="Acme", destination_addr="4915112345678",
        short_message=short_message, data_coding=data_coding, esm_class=esm_class,
        registered_delivery=1, source_addr_ton=5, dest_addr_ton=1, dest_addr_npi=1,
        tlvs=tlvs or {}, submitted_at=0.0,
    )  # fmt: skip


@pytest.mark.parametrize(("rec", "excerpt"), [
    (record(b"hello"), "hello"),
    (record(b"A" * 30), "A" * 20),
    (record("Grüße aus Köln".encode("utf-16-be"), 8), "Gr??e aus K?ln"),
    (record(b"\x05\x00\x03\x01\x02\x01part one", 0, 0x40), "part one"),
    (record(b"", tlvs={Tag.MESSAGE_PAYLOAD: b"from the payload"}), "from the payload"),
    (record(b"\x00\x01binary", 0xF5), "??binary"),
    (record(b""), ""),
])  # fmt: skip
def test_message_excerpt(rec: SubmitRecord, excerpt: str) -> None:
    assert message_excerpt(rec) == excerpt


@given(st.binary(max_size=160), st.integers(0, 255), st.sampled_from([0, 0x40]))
def test_excerpt_is_short_printable_ascii_for_any_input(
    data: bytes, data_coding: int, esm_class: int
) -> None:
    excerpt = message_excerpt(record(data, data_coding, esm_class))
    assert len(excerpt) <= 20
    assert all(" " <= ch <= "~" for ch in excerpt)


@given(st.sampled_from(sorted(OUTCOMES)), st.text(alphabet="0123456789abcdef-", min_size=1,
       max_size=64), st.binary(max_size=140), st.booleans(), st.booleans())  # fmt: skip
def test_receipt_pdu_matches_the_text_form_and_tlvs(
    stat: str, message_id: str, data: bytes, with_tlvs: bool, seconds: bool
) -> None:
    outcome = OUTCOMES[stat]
    pdu = build_receipt(record(data), outcome, message_id, done_at=1e9, with_tlvs=with_tlvs,
                        seconds=seconds)  # fmt: skip
    raw = pdu.body["short_message"]
    assert isinstance(raw, bytes)
    match = RECEIPT.fullmatch(raw.decode("ascii"))
    assert match is not None
    assert (match["id"], match["stat"]) == (message_id, stat)
    assert match["dlvrd"] == ("001" if stat == "DELIVRD" else "000")
    assert len(match["done"]) == (12 if seconds else 10)
    assert pdu.body["esm_class"] == 0x04
    assert (pdu.body["source_addr"], pdu.body["destination_addr"]) == ("4915112345678", "Acme")
    if with_tlvs:
        assert pdu.tlvs == {Tag.RECEIPTED_MESSAGE_ID: message_id.encode() + b"\x00",
                            Tag.MESSAGE_STATE: bytes([outcome.message_state])}  # fmt: skip
    else:
        assert pdu.tlvs == {}


def test_outcome_states() -> None:
    assert {name: o.message_state for name, o in OUTCOMES.items()} == {
        "DELIVRD": MessageState.DELIVERED, "UNDELIV": MessageState.UNDELIVERABLE,
        "EXPIRED": MessageState.EXPIRED, "REJECTD": MessageState.REJECTED,
        "DELETED": MessageState.DELETED, "UNKNOWN": MessageState.UNKNOWN,
        "ACCEPTD": MessageState.ACCEPTED,
    }  # fmt: skip


# --- faults --------------------------------------------------------------------------------


def test_submit_error_counts_down_then_clears() -> None:
    faults = Faults()
    parse_faults({"submit_error": "0x58", "submit_error_count": 2}).apply(faults)
    assert [faults.next_submit_error() for _ in range(3)] == [0x58, 0x58, None]
    assert faults.to_json()["submit_error"] is None


def test_submit_error_without_count_stays() -> None:
    faults = Faults()
    parse_faults({"submit_error": 0x400}).apply(faults)
    assert {faults.next_submit_error() for _ in range(100)} == {0x400}
    parse_faults({"submit_error": None}).apply(faults)
    assert faults.next_submit_error() is None


def test_fault_request_touches_only_what_it_names() -> None:
    faults = Faults(reject_binds=0x0D, submit_delay=1.5)
    parse_faults({"submit_error": 0x14}).apply(faults)
    assert (faults.reject_binds, faults.submit_delay, faults.submit_error) == (0x0D, 1.5, 0x14)


@given(st.dictionaries(st.sampled_from(["reject_binds", "submit_error", "submit_delay", "stall",
                                        "drop", "melt"]),
                       st.one_of(st.none(), st.booleans(), st.integers(-5, 2**33),
                                 st.floats(allow_nan=True), st.text(max_size=8))))  # fmt: skip
def test_parse_faults_accepts_or_refuses_cleanly(values: dict[str, object]) -> None:
    try:
        request = parse_faults(values)
    except InputError as exc:
        assert exc.message and exc.field
        return
    faults = Faults()
    request.apply(faults)
    assert faults.submit_delay >= 0
    for status in (faults.reject_binds, faults.submit_error):
        assert status is None or 0 < status <= 0xFFFFFFFF


# --- the gateway's own receipt parser reads every receipt the simulator writes ---------------


@given(
    st.sampled_from(sorted(OUTCOMES)),
    st.integers(1, 2**60),
    st.binary(max_size=140),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.integers(946_684_800, 3_124_137_599),
)  # fmt: skip  (2000..2068: two-digit years)
def test_gateway_parser_reads_simulated_receipts(
    stat: str, number: int, data: bytes, with_tlvs: bool, seconds: bool, decimal: bool,
    done_at: int,
) -> None:  # fmt: skip
    submit_id = f"{number:x}"
    pdu = build_receipt(record(data), OUTCOMES[stat], receipt_id(submit_id, decimal=decimal),
                        done_at=float(done_at), with_tlvs=with_tlvs, seconds=seconds)  # fmt: skip
    parsed = parse_receipt(pdu)
    assert parsed is not None
    assert parsed.state == stat
    assert parsed.error == OUTCOMES[stat].err
    fmt = "hex" if decimal else "as-is"
    assert canonical_message_id(parsed.message_id, fmt=fmt, from_receipt=True) == (
        canonical_message_id(submit_id, fmt=fmt, from_receipt=False)
    )
    done = datetime.fromtimestamp(done_at, UTC).replace(microsecond=0)
    assert parsed.done_date == (done if seconds else done.replace(second=0))
