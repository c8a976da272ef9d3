"""Opt-out keywords of inbound messages (broker.opt_outs): a table, and properties over any text."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.opt_outs import (
    HELP_KEYWORDS,
    OPT_IN_KEYWORDS,
    OPT_OUT_KEYWORDS,
    Action,
    Command,
    command_of,
    default_help_text,
    help_reply_id,
    normalize_phone,
    sender_phone,
)

ALL = sorted(OPT_OUT_KEYWORDS | OPT_IN_KEYWORDS | HELP_KEYWORDS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STOP", Command(Action.OPT_OUT, "STOP")),
        ("  stop ", Command(Action.OPT_OUT, "STOP")),
        ("\tStopAll\r\n", Command(Action.OPT_OUT, "STOPALL")),
        ("unsubscribe", Command(Action.OPT_OUT, "UNSUBSCRIBE")),
        ("Cancel", Command(Action.OPT_OUT, "CANCEL")),
        ("end", Command(Action.OPT_OUT, "END")),
        ("QUIT ", Command(Action.OPT_OUT, "QUIT")),
        ("Start", Command(Action.OPT_IN, "START")),
        ("unstop", Command(Action.OPT_IN, "UNSTOP")),
        (" help", Command(Action.HELP, "HELP")),
        ("\u00a0STOP\u3000", Command(Action.OPT_OUT, "STOP")),
        ("stop it", None),
        ("STOP.", None),
        ("S T O P", None),
        ("STOPP", None),
        ("please stop", None),
        ("", None),
        ("   ", None),
        ("ſtop", None),  # "ſ".upper() == "S": not a word anybody typed
        ("ＳＴＯＰ", None),
        ("HELP ME", None),
        ("STARTS", None),
    ],
)
def test_keyword_table(text: str, expected: Command | None) -> None:
    assert command_of(text) == expected


@given(
    st.sampled_from(ALL),
    st.lists(st.booleans(), min_size=11, max_size=11),
    st.text(alphabet=" \t\r\n\u00a0", max_size=4),
    st.text(alphabet=" \t\r\n\u00a0", max_size=4),
)
def test_any_case_and_surrounding_space_is_the_keyword(
    word: str, upper: list[bool], before: str, after: str
) -> None:
    mixed = "".join(c.upper() if u else c.lower() for c, u in zip(word, upper, strict=False))
    found = command_of(before + mixed + after)
    assert found is not None and found.keyword == word
    expected = (
        Action.OPT_OUT
        if word in OPT_OUT_KEYWORDS
        else Action.OPT_IN
        if word in OPT_IN_KEYWORDS
        else Action.HELP
    )
    assert found.action is expected


@given(st.text(max_size=30))
def test_only_a_whole_keyword_is_a_command(text: str) -> None:
    found = command_of(text)
    if found is None:
        assert text.strip().upper() not in ALL or not text.strip().isascii()
    else:
        assert text.strip().upper() == found.keyword and found.keyword in ALL


@given(st.sampled_from(ALL), st.text(min_size=1, max_size=10).filter(lambda s: s.strip() != ""))
def test_a_keyword_with_anything_more_is_an_ordinary_message(word: str, extra: str) -> None:
    assert command_of(f"{word} {extra}") is None


def test_sender_phone_is_e164_or_nothing() -> None:
    assert sender_phone("233205550368") == "+233205550368"
    assert sender_phone("+14155552671") == "+14155552671"
    assert sender_phone("12345") is None  # a short code
    assert sender_phone("Acme") is None
    assert sender_phone("0123456789") is None
    assert sender_phone("+1234567890123456") is None


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+14155552671", "US", "+14155552671"),
        ("14155552671", "US", "+14155552671"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("020 555 0368", "GH", "+233205550368"),
        ("233205550368", "US", "+233205550368"),
        ("+233 20 555 0368", "US", "+233205550368"),
        ("12", "US", None),
        ("not a phone", "US", None),
        ("", "US", None),
        ("1" * 41, "US", None),
    ],
)
def test_normalize_phone(raw: str, region: str, expected: str | None) -> None:
    assert normalize_phone(raw, region) == expected


def test_help_reply_id_is_the_same_for_every_delivery() -> None:
    inbound = uuid.uuid4()
    assert help_reply_id(inbound) == help_reply_id(inbound) != help_reply_id(uuid.uuid4())
    assert "STOP" in default_help_text("Acme") and default_help_text("Acme").startswith("Acme")
    assert default_help_text("  ").startswith("This service")
