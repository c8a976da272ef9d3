"""The WhatsApp Business Cloud API's wire formats, without I/O: what the sender posts and reads
back, how webhooks are signed, and what their statuses and messages become on our queues.

Shared by the sender (workers.whatsapp_sender), the webhook route (api.whatsapp_webhooks) and
the fake API shipped with the gateway (whatsapp_sim), so all three speak one format:

* send: ``POST {base}/{phone-number-id}/messages`` with a Bearer token and
  ``{"messaging_product": "whatsapp", "to": ..., "type": "text", "text": {"body": ...}}``,
  answered ``{"messages": [{"id": "wamid..."}]}`` or ``{"error": {"message", "code", ...}}``;
* webhooks: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, app secret>``,
  ``entry[].changes[].value`` holding ``statuses[]`` and ``messages[]``.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SIGNATURE_HEADER = "X-Hub-Signature-256"

#: What each Cloud API status is as a carrier receipt state (broker.receipts.FINAL_STATES).
#: ``sent`` is not there: the message is ``sent`` once the API answered with its id. ``read``
#: comes after ``delivered`` and keeps it delivered.
RECEIPT_STATES: dict[str, str] = {"delivered": "DELIVRD", "read": "DELIVRD", "failed": "UNDELIV"}

#: Inbound message ids are derived from the wamid, so a webhook Meta delivers twice stores
#: one message.
_INBOUND_NAMESPACE = uuid.UUID("5b0f3a52-8c1e-4e43-9a3c-0d5e2f6b9a17")


def send_url(base_url: str, phone_number_id: str) -> str:
    return f"{base_url.rstrip('/')}/{phone_number_id}/messages"


def text_message(to: str, body: str) -> dict[str, Any]:
    """A text message to an E.164 number (the API takes it without the +)."""
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to.lstrip("+"),
        "type": "text",
        "text": {"preview_url": False, "body": body},
    }


def sent_id(answer: Any) -> str | None:
    """The wamid of an accepted message, or None if the answer holds none."""
    try:
        found = answer["messages"][0]["id"]
    except (KeyError, IndexError, TypeError):
        return None
    return found if isinstance(found, str) and found else None


def refusal(answer: Any, status: int) -> tuple[str, str]:
    """(code, text) of a refusal: the API's error code and message, or the HTTP status."""
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code", status))
        return f"WA{code}", str(error.get("message", ""))[:500]
    return f"HTTP{status}", f"the WhatsApp API answered {status}"


def signature(app_secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value for ``body``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(app_secret: str, body: bytes, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(signature(app_secret, body), header)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """One status of a message we sent, as a receipt: its wamid, state and error code."""

    wamid: str
    status: str
    error: str | None = None

    @property
    def receipt_state(self) -> str | None:
        """DELIVRD or UNDELIV; None for a status that ends nothing (sent)."""
        return RECEIPT_STATES.get(self.status)


@dataclass(frozen=True, slots=True)
class InboundText:
    """A message a WhatsApp user sent to one of our numbers."""

    id: uuid.UUID
    from_number: str
    #: The number written to (metadata.display_phone_number), digits only.
    to_number: str
    text: str
    received_at: datetime


def _received_at(raw: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(raw), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC)


def _text_of(message: dict[str, Any]) -> str:
    """A text message's body; for other types (image, location...) their caption or type."""
    kind = str(message.get("type", "text"))
    content = message.get(kind)
    if isinstance(content, dict):
        for key in ("body", "caption"):
            value = content.get(key)
            if isinstance(value, str) and value:
                return value
    return f"[{kind}]"


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _digits(value: Any) -> str:
    return "".join(c for c in str(value) if c.isdigit())


def parse_webhook(doc: Any) -> tuple[list[StatusUpdate], list[InboundText]]:
    """The statuses and inbound messages of one webhook body (anything else is left out)."""
    statuses: list[StatusUpdate] = []
    inbound: list[InboundText] = []
    if not isinstance(doc, dict):
        return statuses, inbound
    for entry in _dicts(doc.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if not isinstance(value, dict):
                continue
            for s in _dicts(value.get("statuses")):
                wamid, status = s.get("id"), s.get("status")
                if isinstance(wamid, str) and wamid and isinstance(status, str):
                    errors = _dicts(s.get("errors"))
                    code = str(errors[0].get("code")) if errors else None
                    statuses.append(StatusUpdate(wamid, status, code))
            metadata = value.get("metadata")
            to = (
                _digits(metadata.get("display_phone_number", ""))
                if isinstance(metadata, dict)
                else ""
            )
            for m in _dicts(value.get("messages")):
                wamid, sender = m.get("id"), _digits(m.get("from", ""))
                if isinstance(wamid, str) and wamid and sender and to:
                    inbound.append(
                        InboundText(
                            uuid.uuid5(_INBOUND_NAMESPACE, wamid),
                            sender,
                            to,
                            _text_of(m),
                            _received_at(m.get("timestamp")),
                        )
                    )
    return statuses, inbound


def status_webhook(
    phone_number_id: str, display_number: str, wamid: str, recipient: str, status: str, at: int
) -> dict[str, Any]:
    """A status webhook body as the Cloud API posts it (the fake's; tests')."""
    item: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(at),
        "recipient_id": recipient,
    }
    if status == "failed":
        item["errors"] = [{"code": 131026, "title": "Message undeliverable"}]
    return _envelope(phone_number_id, display_number, {"statuses": [item]})


def inbound_webhook(
    phone_number_id: str, display_number: str, wamid: str, sender: str, text: str, at: int
) -> dict[str, Any]:
    """An inbound text message's webhook body as the Cloud API posts it."""
    message = {
        "from": sender,
        "id": wamid,
        "timestamp": str(at),
        "type": "text",
        "text": {"body": text},
    }
    contacts = [{"profile": {"name": sender}, "wa_id": sender}]
    return _envelope(phone_number_id, display_number, {"contacts": contacts, "messages": [message]})


def _envelope(phone_number_id: str, display_number: str, content: dict[str, Any]) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": display_number, "phone_number_id": phone_number_id},
        **content,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "0", "changes": [{"value": value, "field": "messages"}]}],
    }
