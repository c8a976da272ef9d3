"""OTP logic without I/O: codes, the keyed hash, the masked text, placeholders, verdicts; and the
request models' refusals."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from api.contract import input_error
from api.schemas.otp import OtpSend, OtpVerify
from broker import otp
from broker.errors import InputError
from broker.segmentation import split
from broker.store.otp import OtpRow

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
KEY = b"k" * 32


@given(st.integers(otp.MIN_LENGTH, otp.MAX_LENGTH))
def test_code_has_its_length_in_ascii_digits(length: int) -> None:
    code = otp.generate_code(length)
    assert len(code) == length and code.isascii() and code.isdigit()


@pytest.mark.parametrize("length", [0, 3, 10, -1])
def test_code_length_outside_4_to_9_is_refused(length: int) -> None:
    with pytest.raises(ValueError):
        otp.generate_code(length)


def test_codes_are_random_and_keep_leading_zeros() -> None:
    codes = {otp.generate_code(4) for _ in range(2000)}
    assert len(codes) > 1500
    assert any(c.startswith("0") for c in codes)


@settings(max_examples=200)
@given(st.integers(otp.MIN_LENGTH, otp.MAX_LENGTH), st.uuids(), st.binary(min_size=32))
def test_hash_verifies_the_code_only(length: int, otp_id: uuid.UUID, key: bytes) -> None:
    code = otp.generate_code(length)
    stored = otp.code_hash(key, otp_id, code)
    assert len(stored) == 32 and code.encode() not in stored
    assert otp.code_matches(key, otp_id, code, stored)
    other = f"{(int(code) + 1) % 10**length:0{length}d}"
    assert not otp.code_matches(key, otp_id, other, stored)
    # The hash is bound to the OTP id and to the key.
    assert not otp.code_matches(key, uuid.uuid4(), code, stored)
    assert not otp.code_matches(key + b"x", otp_id, code, stored)


def test_code_sent_as_a_number_matches_despite_lost_leading_zeros() -> None:
    otp_id = uuid.uuid4()
    stored = otp.code_hash(KEY, otp_id, "004217")
    assert otp.code_matches(KEY, otp_id, "4217", stored)
    assert otp.code_matches(KEY, otp_id, "004217", stored)
    # Other lengths of the same number are other codes.
    assert not otp.code_matches(KEY, otp_id, "0004217", stored)
    assert not otp.code_matches(KEY, otp_id, "00421", stored)


@pytest.mark.parametrize(
    ("template", "code", "plain", "masked"),
    [
        ("Your code is {{code}}", "123456", "Your code is 123456", "Your code is ******"),
        ("Votre code OTP est : ##OTP##", "0042", "Votre code OTP est : 0042",
         "Votre code OTP est : ****"),
        ("{{code}} is your code", "987654321", "987654321 is your code",
         "********* is your code"),
        ("Код: ##OTP## 😀", "12345", "Код: 12345 😀", "Код: ***** 😀"),
        ("{{ code }} stays, {{code}} goes", "1234", "{{ code }} stays, 1234 goes",
         "{{ code }} stays, **** goes"),
    ],
)  # fmt: skip
def test_placeholder_rendering(template: str, code: str, plain: str, masked: str) -> None:
    text = otp.texts(template, code)
    assert (text.plain, text.masked) == (plain, masked)
    assert code not in repr(text)


@pytest.mark.parametrize(
    ("template", "code"),
    [
        ("Your code", "MISSING_CODE_PLACEHOLDER"),
        ("{code} or {{CODE}} or ##otp##", "MISSING_CODE_PLACEHOLDER"),
        ("{{code}} and {{code}}", "INVALID_OTP_MESSAGE"),
        ("{{code}} and ##OTP##", "INVALID_OTP_MESSAGE"),
    ],
)
def test_template_without_exactly_one_placeholder_is_refused(template: str, code: str) -> None:
    with pytest.raises(InputError) as caught:
        otp.check_template(template)
    assert caught.value.code == code and caught.value.field == "message"


_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=200).filter(
    lambda t: "{{code}}" not in t and "##OTP##" not in t
)


@settings(max_examples=300)
@given(
    _text,
    _text,
    st.sampled_from(otp.PLACEHOLDERS),
    st.integers(otp.MIN_LENGTH, otp.MAX_LENGTH),
)
def test_mask_keeps_length_encoding_and_parts(
    before: str, after: str, placeholder: str, length: int
) -> None:
    template = before + placeholder + after
    if sum(template.count(p) for p in otp.PLACEHOLDERS) != 1:
        return  # the halves made a second placeholder
    code = otp.generate_code(length)
    text = otp.texts(template, code)
    assert len(text.masked) == len(text.plain)
    assert text.plain == before + code + after
    assert text.masked == before + "*" * length + after
    plain, masked = split(text.plain, max_chars=10_000), split(text.masked, max_chars=10_000)
    assert plain.encoding == masked.encoding
    assert plain.part_units == masked.part_units


def _row(**kw: Any) -> OtpRow:
    base: dict[str, Any] = {
        "id": uuid.uuid4(),
        "to_number": "+14155552671",
        "code_hash": secrets.token_bytes(32),
        "expires_at": NOW + timedelta(minutes=5),
        "attempts": 0,
        "verified_at": None,
        "now": NOW,
    }
    base.update(kw)
    return OtpRow(**base)


@pytest.mark.parametrize(
    ("row", "matches", "status"),
    [
        (None, True, "not_found"),
        (_row(), True, "verified"),
        (_row(), False, "invalid_code"),
        (_row(attempts=4), True, "verified"),
        (_row(attempts=5), True, "too_many_attempts"),
        (_row(verified_at=NOW), True, "already_used"),
        (_row(verified_at=NOW, attempts=5), False, "already_used"),
        (_row(expires_at=NOW), True, "expired"),
        (_row(expires_at=NOW - timedelta(seconds=1)), False, "expired"),
        (_row(expires_at=NOW - timedelta(seconds=1), attempts=5), True, "too_many_attempts"),
    ],
)
def test_verdicts(row: OtpRow | None, matches: bool, status: str) -> None:
    assert otp.decide(row, matches) == status


@pytest.mark.parametrize(
    ("age", "wait"),
    [(timedelta(0), 600), (timedelta(seconds=599.5), 1), (timedelta(minutes=9), 60),
     (timedelta(seconds=30.2), 570)],
)  # fmt: skip
def test_retry_after_is_when_the_oldest_send_leaves_the_window(age: timedelta, wait: int) -> None:
    assert otp.retry_after(NOW - age, NOW) == wait


CONTEXT = {"region": "US", "max_body_chars": 1600}


def _send_error(payload: dict[str, Any]) -> tuple[str, str | None]:
    with pytest.raises(ValidationError) as caught:
        OtpSend.model_validate(payload, context=CONTEXT)
    err = input_error(caught.value, OtpSend)
    return err.code, err.field


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({}, "MISSING_RECIPIENT"),
        ({"to": "12"}, "INVALID_PHONE_NUMBER"),
        ({"to": ["+14155552671"]}, "INVALID_PHONE_NUMBER"),
        ({"to": "+14155552671", "length": 3}, "INVALID_OTP_LENGTH"),
        ({"to": "+14155552671", "length": 10}, "INVALID_OTP_LENGTH"),
        ({"to": "+14155552671", "expiry_minutes": 0}, "INVALID_OTP_EXPIRY"),
        ({"to": "+14155552671", "expiry_minutes": 1441}, "INVALID_OTP_EXPIRY"),
        ({"to": "+14155552671", "message": "no code"}, "MISSING_CODE_PLACEHOLDER"),
        ({"to": "+14155552671", "message": "{{code}}{{code}}"}, "INVALID_OTP_MESSAGE"),
        ({"to": "+14155552671", "message": ""}, "INVALID_OTP_MESSAGE"),
        ({"to": "+14155552671", "message": "x" * 1592 + "{{code}}"}, "BODY_TOO_LONG"),
        ({"to": "+14155552671", "message": "{{code}}\x00"}, "INVALID_CHARACTER"),
        ({"to": "+14155552671", "from": "!"}, "INVALID_SENDER_ID"),
    ],
)
def test_send_refusals(payload: dict[str, Any], code: str) -> None:
    assert _send_error(payload)[0] == code


def test_send_defaults_and_local_numbers() -> None:
    send = OtpSend.model_validate({"to": "(415) 555-2671"}, context=CONTEXT)
    assert send.to == "+14155552671" and send.length == 6 and send.expiry_minutes == 10
    assert send.sender is None and "{{code}}" in send.message


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"to": "+14155552671"}, "MISSING_CODE"),
        ({"code": "123456"}, "MISSING_RECIPIENT"),
        ({"code": "12a456", "to": "+14155552671"}, "INVALID_CODE"),
        ({"code": "1234567890", "to": "+14155552671"}, "INVALID_CODE"),
        ({"code": "", "to": "+14155552671"}, "INVALID_CODE"),
        ({"code": "١٢٣٤", "to": "+14155552671"}, "INVALID_CODE"),
        ({"code": -1234, "to": "+14155552671"}, "INVALID_CODE"),
        ({"code": True, "to": "+14155552671"}, "INVALID_CODE"),
        ({"code": "1234", "to": "12"}, "INVALID_PHONE_NUMBER"),
        ({"code": "1234", "id": "nope"}, "INVALID_ID"),
    ],
)
def test_verify_refusals(payload: dict[str, Any], code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        OtpVerify.model_validate(payload, context=CONTEXT)
    assert input_error(caught.value, OtpVerify).code == code


def test_verify_reads_a_numeric_code_and_a_local_number() -> None:
    check = OtpVerify.model_validate({"code": 4217, "to": "4155552671"}, context=CONTEXT)
    assert check.code == "4217" and check.to == "+14155552671" and check.id is None
