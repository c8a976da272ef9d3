"""The smsapi dialect's answers (a Laravel SMS API) and its Laravel-style input checks.

Every answer shape is one model here, so the handlers, the error renderer and the dialect's
Swagger page (api/dialects/smsapi_docs.py) speak of the same fields.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from api.errors import ApiError
from api.schemas.common import Number
from api.schemas.messages import SendAccepted
from broker.resources import number

#: The code of a Laravel validation failure (422, ``{"message", "errors"}``).
VALIDATION_FAILED = "VALIDATION_FAILED"
EXPIRY_DAYS_MIN, EXPIRY_DAYS_MAX = 1, 365
_INTEGER = re.compile(r"^[+-]?\d+$")


class SentMessage(BaseModel):
    id: UUID
    number: str = Field(
        description="The recipient in E.164 (local numbers read with the account's region)."
    )
    status: str = Field(description="`queued` (or `scheduled`): it is on its way.")
    segments: int = Field(description="Parts on the wire; each is billed.")


class SmsSent(BaseModel):
    """A send taken: every message is queued and will reach a final state."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message": "SMS sent successfully.",
                    "batch_id": "6f1c1b9e-3a52-4d3e-9a43-0b7e52a1c2d4",
                    "recipients": 2,
                    "cost": 2,
                    "messages": [
                        {
                            "id": "0b5d7f0e-8a1e-4f43-bb3f-5f4e8f1f9a10",
                            "number": "+254701234567",
                            "status": "queued",
                            "segments": 1,
                        },
                        {
                            "id": "9d2e4c1a-77b0-4a55-a3f2-1c0d8e6b5f21",
                            "number": "+254712345678",
                            "status": "queued",
                            "segments": 1,
                        },
                    ],
                }
            ]
        }
    )

    message: str = "SMS sent successfully."
    batch_id: UUID | None = Field(description="Set when the send has more than one number.")
    recipients: int
    cost: Number = Field(description="Credits the send costs (the sum of its parts' prices).")
    messages: list[SentMessage]

    @classmethod
    def of(cls, accepted: SendAccepted) -> SmsSent:
        return cls(
            batch_id=accepted.batch_id,
            recipients=accepted.recipients,
            cost=accepted.estimated_cost or 0,
            messages=[
                SentMessage(id=m.id, number=m.to, status=m.status, segments=m.segments)
                for m in accepted.messages
            ],
        )


class AccountBalance(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"balance": 98.5, "currency": "KES"}]}
    )

    balance: Number
    currency: str

    @classmethod
    def of(cls, balance: Any, currency: str) -> AccountBalance:
        return cls(balance=number(balance) or 0, currency=currency)


class KeyIssued(BaseModel):
    """A key's secret: shown only in this answer."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message": "API key generated successfully.",
                    "api_key": "sk_live_6Jx0bq8mYw1r3T2aPz9K4cVn5HdL7sQe",
                    "expires_at": "2026-05-04T09:30:00Z",
                }
            ]
        }
    )

    message: str
    api_key: str
    expires_at: datetime | None = Field(description="null: the key never expires.")


class KeyRevoked(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"message": "API key revoked successfully."}]}
    )

    message: str = "API key revoked successfully."


class ErrorAnswer(BaseModel):
    """The provider's error body: ``{"error": ...}``, with ``help`` when no key was given."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "API key is required",
                    "help": "Provide X-API-Key header or api_key parameter",
                }
            ]
        }
    )

    error: str
    help: str | None = None


class LaravelMessage(BaseModel):
    """Laravel's own answers: 404, 405, 429 (``Too Many Attempts.``), 500 and 503."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"message": "Too Many Attempts."}]})

    message: str
    retry_after: int | None = Field(None, description="429 only: seconds until one more fits.")


class ValidationAnswer(BaseModel):
    """Laravel's 422: the first problem, and every problem by field."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message": "The expiry days field must be at least 1.",
                    "errors": {"expiry_days": ["The expiry days field must be at least 1."]},
                }
            ]
        }
    )

    message: str
    errors: dict[str, list[str]]


def _label(field: str) -> str:
    return field.replace("_", " ")


def _missing(value: Any) -> bool:
    """Laravel's ``required``: absent, null, blank (strings are trimmed) or an empty list."""
    if value is None or value == []:
        return True
    return isinstance(value, str) and not value.strip()


def invalid(errors: dict[str, list[str]]) -> ApiError:
    """A 422 as Laravel words it: the first message, "(and N more errors)"."""
    messages = [m for found in errors.values() for m in found]
    more = len(messages) - 1
    suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    return ApiError(422, VALIDATION_FAILED, messages[0] + suffix, extra={"errors": errors})


def require(values: dict[str, Any], *fields: str) -> None:
    """Laravel's ``required`` rule on each field (422 naming every missing one)."""
    errors = {f: [f"The {_label(f)} field is required."] for f in fields if _missing(values.get(f))}
    if errors:
        raise invalid(errors)


def expiry_days(values: dict[str, Any]) -> int | None:
    """``expiry_days``: optional, an integer from 1 to 365 (422 otherwise)."""
    raw = values.get("expiry_days")
    if _missing(raw):
        return None
    found: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        found = raw
    elif isinstance(raw, float) and raw.is_integer():
        found = int(raw)
    elif isinstance(raw, str) and _INTEGER.match(raw.strip()):
        found = int(raw.strip())
    label = _label("expiry_days")
    if found is None:
        problem = f"The {label} field must be an integer."
    elif found < EXPIRY_DAYS_MIN:
        problem = f"The {label} field must be at least {EXPIRY_DAYS_MIN}."
    elif found > EXPIRY_DAYS_MAX:
        problem = f"The {label} field must not be greater than {EXPIRY_DAYS_MAX}."
    else:
        return found
    raise invalid({"expiry_days": [problem]})
