"""Event envelopes, queue payload parsing, the retry policy and endpoint validation (pure logic)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.errors import InputError
from broker.webhooks.endpoints import parse_endpoint, parse_events, parse_url
from broker.webhooks.events import EVENT_TYPES, event_id_for, make_event, utc_timestamp
from broker.webhooks.payloads import (
    PayloadError,
    Retry,
    parse_event,
    parse_payload,
    retries_payload,
)
from broker.webhooks.policy import Verdict, judge, max_attempts, retry_tier

ACCOUNT = uuid.UUID("0b6f7a52-6c1e-4a53-9d0e-2f7f0f3f9a11")
EVT_RE = re.compile(r"^evt_[0-9a-f]{32}$")


# --- event ids and envelopes -------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "m1:delivered", "m1:sent", "ü" * 300])
def test_event_id_shape_and_stability(key: str) -> None:
    assert EVT_RE.match(event_id_for(key))
    assert event_id_for(key) == event_id_for(key)


def test_event_id_differs_per_status() -> None:
    assert event_id_for("m1:sent") != event_id_for("m1:delivered")


@given(st.text(), st.text())
def test_property_event_id_is_a_function_of_the_key(a: str, b: str) -> None:
    assert EVT_RE.match(event_id_for(a))
    assert (event_id_for(a) == event_id_for(b)) == (a == b)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 11, 22, 13, 55, 0, 123456, tzinfo=UTC), "2026-11-22T13:55:00.123Z"),
        (
            datetime(2026, 11, 22, 15, 55, tzinfo=timezone(timedelta(hours=2))),
            "2026-11-22T13:55:00.000Z",
        ),
    ],
)
def test_utc_timestamp(moment: datetime, expected: str) -> None:
    assert utc_timestamp(moment) == expected


def test_make_event_shape_and_roundtrip() -> None:
    data = {"id": "m1", "status": "delivered"}
    event = make_event(
        "message.status",
        ACCOUNT,
        data,
        event_id=event_id_for("m1:delivered"),
        callback_url="https://example.com/cb",
    ).model_dump(mode="json")
    assert set(event) == {"v", "id", "type", "account_id", "timestamp", "data", "callback_url"}
    assert event["account_id"] == str(ACCOUNT)
    assert event["callback_url"] == "https://example.com/cb"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", event["timestamp"])
    parsed = parse_event(json.loads(json.dumps(event)))
    assert parsed.model_dump(mode="json") == event
    assert parsed.message_id == "m1"
    assert json.loads(parsed.body()) == {
        "type": "message.status",
        "timestamp": event["timestamp"],
        "data": data,
    }


def test_make_event_refuses_unknown_type() -> None:
    with pytest.raises(InputError):
        make_event("message.exploded", ACCOUNT, {}, event_id="evt_1")


# --- queue payloads ----------------------------------------------------------------------


def good_event(**changes: Any) -> dict[str, Any]:
    event = make_event("message.inbound", ACCOUNT, {"id": "in1"}, event_id="evt_1")
    event = event.model_dump(mode="json")
    event.update(changes)
    return event


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"42",
        b'{"other": 1}',
        b'{"events": {}}',
        b"[" * 100_000,
    ],
)
def test_payload_rejected_as_a_whole(body: bytes) -> None:
    with pytest.raises(PayloadError):
        parse_payload(body)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "evt",
        good_event(id=""),
        good_event(id=None),
        good_event(id="x" * 201),
        good_event(id="evt\x00"),
        good_event(id="évt"),
        good_event(type="message.exploded"),
        good_event(account_id="not-a-uuid"),
        good_event(account_id=7),
        good_event(timestamp=None),
        good_event(data=[]),
    ],
)
def test_bad_event_is_dropped_the_rest_kept(bad: Any) -> None:
    parsed = parse_payload(json.dumps({"events": [good_event(), bad]}).encode())
    assert [e.id for e in parsed.events] == ["evt_1"]
    assert len(parsed.problems) == 1


@pytest.mark.parametrize("callback", ["ftp://x", "https://exa mple.com", 5, "https://\x00"])
def test_bad_callback_url_loses_only_the_callback(callback: Any) -> None:
    parsed = parse_payload(json.dumps({"events": [good_event(callback_url=callback)]}).encode())
    assert [(e.id, e.callback_url) for e in parsed.events] == [("evt_1", None)]
    assert len(parsed.problems) == 1
    with pytest.raises(PayloadError):
        parse_event(good_event(callback_url=callback))


@pytest.mark.parametrize("callback", ["https://example.com/cb", "HTTPS://Example.com/cb"])
def test_good_callback_url_kept(callback: str) -> None:
    assert parse_event(good_event(callback_url=callback)).callback_url == callback


def test_retry_roundtrip() -> None:
    event = parse_event(good_event())
    retry = Retry.to(event, uuid.uuid4(), "https://example.com/h", 3)
    callback = Retry.to(event, None, "https://example.com/cb", 2)
    parsed = parse_payload(retries_payload([retry, callback]).model_dump_json().encode())
    assert parsed.retries == [retry, callback]
    assert parsed.events == [] and parsed.problems == []


@pytest.mark.parametrize(
    "bad",
    [
        {"event": good_event(), "target": {"webhook_id": None, "url": "https://x"}, "attempt": 1},
        {
            "event": good_event(),
            "target": {"webhook_id": None, "url": "https://x"},
            "attempt": True,
        },
        {"event": good_event(), "target": {"webhook_id": "nope", "url": "https://x"}, "attempt": 2},
        {"event": good_event(), "target": {"webhook_id": None, "url": None}, "attempt": 2},
        {"event": good_event(), "target": None, "attempt": 2},
        {"event": {}, "target": {"webhook_id": None, "url": "https://x"}, "attempt": 2},
        [],
    ],
)
def test_bad_retry_is_dropped(bad: Any) -> None:
    parsed = parse_payload(json.dumps({"retries": [bad]}).encode())
    assert parsed.retries == [] and len(parsed.problems) == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.binary())
def test_property_arbitrary_bytes_never_escape_as_other_errors(body: bytes) -> None:
    try:
        parsed = parse_payload(body)
    except PayloadError as exc:
        assert exc.code == "INVALID_PAYLOAD"
        return
    assert all(e.type in EVENT_TYPES for e in parsed.events)
    assert all(r.attempt >= 2 for r in parsed.retries)


@given(
    st.dictionaries(
        st.sampled_from(["events", "retries", "x"]),
        st.lists(json_values | st.just(good_event()), max_size=4) | json_values,
    )
)
def test_property_arbitrary_json_parses_or_raises_payload_error(doc: dict[str, Any]) -> None:
    try:
        parsed = parse_payload(json.dumps(doc).encode())
    except PayloadError:
        return
    items = len(doc.get("events", [])) + len(doc.get("retries", []))
    kept = len(parsed.events) + len(parsed.retries)
    assert kept <= items <= kept + len(parsed.problems)


# --- retry policy ------------------------------------------------------------------------

DELAYS = (1.0, 2.0, 3.0)


@pytest.mark.parametrize(
    ("status", "attempt", "verdict"),
    [
        (200, 1, Verdict.DELIVERED),
        (204, 4, Verdict.DELIVERED),
        (299, 2, Verdict.DELIVERED),
        (410, 1, Verdict.GONE),
        (None, 1, Verdict.RETRY),
        (500, 3, Verdict.RETRY),
        (301, 1, Verdict.RETRY),
        (404, 2, Verdict.RETRY),
        (500, 4, Verdict.GIVE_UP),
        (None, 4, Verdict.GIVE_UP),
        (199, 9, Verdict.GIVE_UP),
    ],
)
def test_judge(status: int | None, attempt: int, verdict: Verdict) -> None:
    assert judge(status, attempt, DELAYS) is verdict
    assert verdict.final == (verdict is not Verdict.RETRY)


@given(
    status=st.none() | st.integers(100, 599),
    delays=st.lists(st.floats(0.1, 10), max_size=8).map(tuple),
)
def test_property_attempts_end(status: int | None, delays: tuple[float, ...]) -> None:
    """Following the policy always ends, after at most len(delays)+1 attempts, using each tier
    at most once and in order."""
    attempt, tiers = 1, []
    while judge(status, attempt, delays) is Verdict.RETRY:
        tiers.append(retry_tier(attempt))
        attempt += 1
    assert attempt <= max_attempts(delays)
    assert tiers == list(range(len(tiers)))
    assert all(t < len(delays) for t in tiers)
    if status is not None and not 200 <= status < 300 and status != 410:
        assert attempt == max_attempts(delays)


# --- endpoint validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "http://127.0.0.1:8080/x?y=1",
        "HTTPS://Example.com",
        "https://bücher.example/h",
        " https://example.com/padded ",
    ],
)
def test_url_accepted(url: str) -> None:
    got = parse_url(url)
    assert got.lower() == url.strip().lower()
    assert got.startswith(("http://", "https://"))
    assert got[8:] == url.strip()[8:]


@pytest.mark.parametrize(
    "url",
    [
        None,
        5,
        "",
        "   ",
        "example.com",
        "ftp://example.com",
        "https://",
        "https:///path",
        "https://exa mple.com",
        "https://example.com/\nx",
        "https://example.com/#frag",
        "javascript:alert(1)",
        "https://" + "a" * 2000 + ".com",
        "http//example.com",
    ],
)
def test_url_rejected(url: Any) -> None:
    with pytest.raises(InputError) as info:
        parse_url(url)
    assert info.value.code == "INVALID_URL" and info.value.field == "url"


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (None, EVENT_TYPES),
        (["message.inbound"], ("message.inbound",)),
        (["message.inbound", "message.status", "message.inbound"], EVENT_TYPES),
    ],
)
def test_events_accepted(events: Any, expected: tuple[str, ...]) -> None:
    assert parse_events(events) == expected


@pytest.mark.parametrize("events", [[], "message.status", ["message.sent"], [1], {}])
def test_events_rejected(events: Any) -> None:
    with pytest.raises(InputError) as info:
        parse_events(events)
    assert info.value.code == "INVALID_EVENTS" and info.value.field == "events"


@given(json_values)
def test_property_endpoint_body_parses_or_raises_input_error(doc: Any) -> None:
    try:
        spec = parse_endpoint(doc)
    except InputError:
        return
    assert spec.url.startswith(("http://", "https://"))
    assert spec.events and set(spec.events) <= set(EVENT_TYPES)
