"""The account as its keys see it: credits, settings and the callback signing secret."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from api.schemas.common import Number, Text, blank_as_none, checked
from broker.accounts import HELP_TEXT_MAX, sender_format
from broker.resources import number
from broker.store.accounts import UNCHANGED, AccountRow
from broker.webhooks.signing import previous_secret_expiry


class Balance(BaseModel):
    balance: Number
    currency: str
    status: str


def _previous_expiry(row: AccountRow) -> datetime | None:
    """When the rotated-out secret stops signing; None if there is none (any more)."""
    if row.previous_webhook_secret is None:
        return None
    expires = previous_secret_expiry(row.webhook_secret_rotated_at)
    return expires if expires is not None and expires > datetime.now(UTC) else None


_PREVIOUS_EXPIRES = Field(
    description="When the secret replaced by the last rotation stops signing callback_url"
    " deliveries (until then each carries both signatures); null if there is none."
)


class Account(BaseModel):
    id: UUID
    name: str
    region: str = Field(description="Default region of local numbers (ISO 3166 alpha-2).")
    balance: Number
    currency: str
    status: str = Field(description="`active` or `suspended`.")
    plan: str
    default_sender: str | None = Field(
        description="The `from` of a send that has none (an approved sender ID or a number)."
    )
    help_text: str | None = Field(description="The reply to an inbound HELP.")
    webhook_secret: str = Field(
        description="Signs per-message `callback_url` deliveries (Standard Webhooks,"
        " `webhook-signature`); rotate it with POST /v1/account/webhook-secret."
    )
    previous_webhook_secret_expires_at: datetime | None = _PREVIOUS_EXPIRES
    created_at: datetime

    @classmethod
    def of(cls, row: AccountRow) -> Account:
        return cls(
            id=row.id,
            name=row.name,
            region=row.region,
            balance=number(row.balance) or 0,
            currency=row.currency,
            status=row.status,
            plan=row.plan,
            default_sender=row.default_sender,
            help_text=row.help_text,
            webhook_secret=row.webhook_secret,
            previous_webhook_secret_expires_at=_previous_expiry(row),
            created_at=row.created_at,
        )


class WebhookSecretRotated(BaseModel):
    webhook_secret: str = Field(description="The new secret; it signs from now on.")
    previous_webhook_secret_expires_at: datetime = _PREVIOUS_EXPIRES

    @classmethod
    def of(cls, row: AccountRow) -> WebhookSecretRotated:
        expires = previous_secret_expiry(row.webhook_secret_rotated_at)
        assert expires is not None  # a rotation sets it
        return cls(webhook_secret=row.webhook_secret, previous_webhook_secret_expires_at=expires)


DefaultSender = Annotated[Text | None, BeforeValidator(blank_as_none)]


def _sender(value: str | None) -> str | None:
    return None if value is None else checked(sender_format)(value)


class AccountUpdate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"default_sender": "ACME", "help_text": "Acme alerts. Reply STOP to end."}]
        }
    )

    #: The codes customers know for pydantic's own errors on these fields (see api.contract).
    error_codes: ClassVar[dict[str, str]] = {"default_sender": "INVALID_SENDER_ID"}

    default_sender: Annotated[DefaultSender, AfterValidator(_sender)] = Field(
        None,
        description="An approved sender ID of this account, or a number of 3–15 digits;"
        " null clears it.",
    )
    help_text: Text | None = Field(
        None,
        min_length=1,
        max_length=HELP_TEXT_MAX,
        description="The reply to an inbound HELP (1–918 characters); null clears it.",
    )

    def changes(self) -> dict[str, Any]:
        """Only the fields the request named (a null one clears its setting)."""
        return {
            name: getattr(self, name) if name in self.model_fields_set else UNCHANGED
            for name in ("default_sender", "help_text")
        }
