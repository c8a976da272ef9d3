"""Standard Webhooks signing: a published vector, independent HMAC checks, and properties."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.errors import BrokerError
from broker.webhooks.signing import SignatureError, new_secret, secret_key, sign, verify

# The example of the Standard Webhooks specification's reference libraries.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def reference_signature(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    key = base64.b64decode(secret[len("whsec_") :])
    mac = hmac.new(key, msg_id.encode() + b"." + str(ts).encode() + b"." + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def headers(msg_id: str, ts: int, sig: str) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig}


def test_spec_vector() -> None:
    assert reference_signature(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIG
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIG
    verify(SPEC_SECRET, headers(SPEC_ID, SPEC_TS, SPEC_SIG), SPEC_BODY, now=SPEC_TS)


@pytest.mark.parametrize(
    ("msg_id", "ts", "body"),
    [
        ("evt_0", 0, b""),
        ("evt_00000000000000000000000000000000", 1_700_000_000, b'{"type":"message.status"}'),
        ("évt-ü", 2_000_000_000, '{"data":"héllo ✓"}'.encode()),
        ("x" * 200, 1, bytes(range(256))),
    ],
)
def test_sign_matches_independent_hmac(msg_id: str, ts: int, body: bytes) -> None:
    assert sign(SPEC_SECRET, msg_id, ts, body) == reference_signature(SPEC_SECRET, msg_id, ts, body)


def test_new_secret_shape() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:], validate=True)) == 32
    assert new_secret() != secret


NOW = 1_700_000_000


@pytest.mark.parametrize(
    ("hdrs", "code"),
    [
        ({}, "MISSING_SIGNATURE"),
        ({"webhook-id": SPEC_ID, "webhook-timestamp": str(NOW)}, "MISSING_SIGNATURE"),
        (
            {"webhook-timestamp": str(NOW), "webhook-signature": "v1,AAAA"},
            "MISSING_SIGNATURE",
        ),
        (headers(SPEC_ID, NOW, ""), "MISSING_SIGNATURE"),
        ({**headers(SPEC_ID, NOW, "v1,x"), "webhook-timestamp": "soon"}, "INVALID_TIMESTAMP"),
        ({**headers(SPEC_ID, NOW, "v1,x"), "webhook-timestamp": "-5"}, "INVALID_TIMESTAMP"),
        (headers(SPEC_ID, NOW - 301, "v1,x"), "EXPIRED_SIGNATURE"),
        (headers(SPEC_ID, NOW + 301, "v1,x"), "EXPIRED_SIGNATURE"),
        (headers(SPEC_ID, NOW, "v1,not-base64!"), "INVALID_SIGNATURE"),
        (headers(SPEC_ID, NOW, "v1," + base64.b64encode(b"\0" * 32).decode()), "INVALID_SIGNATURE"),
        (headers(SPEC_ID, NOW, "garbage"), "INVALID_SIGNATURE"),
    ],
)
def test_verify_rejects(hdrs: dict[str, str], code: str) -> None:
    with pytest.raises(SignatureError) as info:
        verify(SPEC_SECRET, hdrs, SPEC_BODY, now=NOW)
    assert info.value.code == code
    assert isinstance(info.value, BrokerError)


def test_verify_wrong_signature_version_rejected() -> None:
    good = reference_signature(SPEC_SECRET, SPEC_ID, NOW, SPEC_BODY)
    with pytest.raises(SignatureError):
        verify(SPEC_SECRET, headers(SPEC_ID, NOW, "v2," + good[3:]), SPEC_BODY, now=NOW)


@pytest.mark.parametrize(
    "template",
    [
        "{good}",
        "v1,AAAA {good}",
        "{good} v1,AAAA",
        "v1a,xyz   {good}",
        "v1,notbase64! v2,abc {good}",
    ],
)
def test_verify_accepts_any_of_several_signatures(template: str) -> None:
    good = reference_signature(SPEC_SECRET, SPEC_ID, NOW, SPEC_BODY)
    verify(SPEC_SECRET, headers(SPEC_ID, NOW, template.format(good=good)), SPEC_BODY, now=NOW)


def test_verify_header_names_are_case_insensitive_and_tolerance_is_inclusive() -> None:
    good = reference_signature(SPEC_SECRET, SPEC_ID, NOW, SPEC_BODY)
    hdrs = {"Webhook-Id": SPEC_ID, "Webhook-Timestamp": str(NOW), "WEBHOOK-SIGNATURE": good}
    verify(SPEC_SECRET, hdrs, SPEC_BODY, now=NOW + 300)
    verify(SPEC_SECRET, hdrs, SPEC_BODY, now=NOW - 300)
    verify(SPEC_SECRET, hdrs, SPEC_BODY, now=NOW + 1000, tolerance=1000)


@pytest.mark.parametrize("secret", ["whsec_", "whsec_%%%", "whsec_abc"])
def test_invalid_secret(secret: str) -> None:
    with pytest.raises(SignatureError) as info:
        secret_key(secret)
    assert info.value.code == "INVALID_SECRET"


secrets_st = st.binary(min_size=1, max_size=64).map(
    lambda b: "whsec_" + base64.b64encode(b).decode()
)
ids_st = st.text(min_size=1, max_size=60).filter(lambda s: " " not in s)
ts_st = st.integers(min_value=0, max_value=4_000_000_000)


@given(secret=secrets_st, msg_id=ids_st, ts=ts_st, body=st.binary(max_size=300))
def test_property_verify_accepts_sign(secret: str, msg_id: str, ts: int, body: bytes) -> None:
    sig = sign(secret, msg_id, ts, body)
    assert sig == reference_signature(secret, msg_id, ts, body)
    verify(secret, headers(msg_id, ts, sig), body, now=ts)


@given(
    secret=secrets_st,
    ts=ts_st,
    body=st.binary(min_size=1, max_size=300),
    data=st.data(),
)
def test_property_any_altered_body_byte_fails(
    secret: str, ts: int, body: bytes, data: st.DataObject
) -> None:
    sig = sign(secret, "evt_1", ts, body)
    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    altered = bytearray(body)
    altered[index] ^= flip
    with pytest.raises(SignatureError):
        verify(secret, headers("evt_1", ts, sig), bytes(altered), now=ts)


@given(secret=secrets_st, ts=ts_st, body=st.binary(max_size=100), data=st.data())
def test_property_any_altered_signature_byte_fails(
    secret: str, ts: int, body: bytes, data: st.DataObject
) -> None:
    raw = bytearray(base64.b64decode(sign(secret, "evt_1", ts, body)[3:]))
    index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[index] ^= data.draw(st.integers(min_value=1, max_value=255))
    forged = "v1," + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(SignatureError):
        verify(secret, headers("evt_1", ts, forged), body, now=ts)


@given(secret=secrets_st, other=secrets_st, ts=ts_st, body=st.binary(max_size=100))
def test_property_other_secret_or_id_or_time_fails(
    secret: str, other: str, ts: int, body: bytes
) -> None:
    sig = sign(secret, "evt_1", ts, body)
    if secret_key(other) != secret_key(secret):
        with pytest.raises(SignatureError):
            verify(other, headers("evt_1", ts, sig), body, now=ts)
    with pytest.raises(SignatureError):
        verify(secret, headers("evt_2", ts, sig), body, now=ts)
    with pytest.raises(SignatureError):
        verify(secret, headers("evt_1", ts + 1, sig), body, now=ts)
