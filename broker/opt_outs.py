"""Opt-out keywords of inbound messages, and the phone form of an opt-out. Pure: no I/O.

An inbound message whose whole text, trimmed and in any case, is one of the keywords below
acts on the sender's opt-out of the account owning the number it was sent to:

- STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT: opt out;
- START, UNSTOP: opt back in;
- HELP: the account's help text is sent back as a reply.

Anything else ("stop it", "STOP.", "S T O P") is an ordinary message.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from enum import StrEnum

from broker.phone import to_e164


class Action(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP"})

_ACTIONS: dict[str, Action] = {
    **dict.fromkeys(OPT_OUT_KEYWORDS, Action.OPT_OUT),
    **dict.fromkeys(OPT_IN_KEYWORDS, Action.OPT_IN),
    **dict.fromkeys(HELP_KEYWORDS, Action.HELP),
}

#: The longest keyword: longer texts are never keywords, whatever their spaces.
_LONGEST = max(map(len, _ACTIONS))

#: What the opt_outs table accepts as a phone.
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")

#: Names the reply to a HELP, so a redelivered inbound message never gets two replies.
_REPLY_NAMESPACE = uuid.UUID("5d0c8a51-3f2e-4c1b-9a7e-6b2f0d4e8c13")


@dataclass(frozen=True, slots=True)
class Command:
    """A keyword found in an inbound message: what it does and the word itself (upper-case)."""

    action: Action
    keyword: str


def command_of(text: str) -> Command | None:
    """The keyword command the whole ``text`` is (surrounding whitespace and case ignored).

    Only ASCII letters match: ``"ſtop".upper()`` is "STOP" in Python, but no person typed
    that to unsubscribe.
    """
    word = text.strip()
    if len(word) > _LONGEST or not word.isascii():
        return None
    word = word.upper()
    action = _ACTIONS.get(word)
    return Command(action, word) if action is not None else None


def sender_phone(address: str) -> str | None:
    """The E.164 form of an inbound message's sender, or None when it is not a phone number
    (an alphanumeric sender, a short code): such a sender cannot be opted out or replied to."""
    digits = address.strip().lstrip("+")
    phone = f"+{digits}"
    return phone if digits.isdigit() and _E164.match(phone) else None


def normalize_phone(raw: str, region: str) -> str | None:
    """A customer's phone (E.164 with or without '+', or a local number read with the
    account's region) in E.164, or None when it is not a valid number."""
    value = raw.strip()
    if not value or len(value) > 40:
        return None
    found = to_e164(value, region)
    if found is None and value.isdigit():
        found = to_e164(f"+{value}", region)
    return found


def help_reply_id(inbound_id: uuid.UUID) -> uuid.UUID:
    """The message id of the reply to one HELP: the same for every delivery of it."""
    return uuid.uuid5(_REPLY_NAMESPACE, f"help-reply:{inbound_id}")


def default_help_text(account_name: str) -> str:
    """The reply to HELP for an account that has not set its own."""
    name = account_name.strip()[:40] or "This service"
    return f"{name}: reply STOP to unsubscribe, START to subscribe again."
