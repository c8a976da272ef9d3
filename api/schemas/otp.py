"""POST /v1/otp (send a one-time code) and POST /v1/otp/verify."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from api.schemas.common import Number, OptionalText, Text, checked
from api.schemas.messages import EncodingName
from broker import otp
from broker.phone import check_sender, to_e164
from broker.status import MessageStatus


def _phone(value: str, info: ValidationInfo) -> str:
    region = (info.context or {}).get("region", "US")
    e164 = to_e164(value, region) if value else None
    if e164 is None:
        raise PydanticCustomError(
            "INVALID_PHONE_NUMBER", "`to` is not a valid phone number", {"details": None}
        )
    return e164


def _code_text(value: Any) -> Any:
    """A code sent as a JSON number is read as its digits (see broker.otp.code_matches)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return value


class OtpSend(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "to": "+14155552671",
                    "from": "14155550100",
                    "length": 6,
                    "expiry_minutes": 10,
                    "message": "Your Acme code is {{code}}",
                }
            ]
        },
    )

    #: The codes customers know for pydantic's own errors on these fields (see api.contract).
    error_codes: ClassVar[dict[str, str]] = {
        "to:missing": "MISSING_RECIPIENT",
        "to": "INVALID_PHONE_NUMBER",
        "from": "INVALID_SENDER_ID",
        "length": "INVALID_OTP_LENGTH",
        "expiry_minutes": "INVALID_OTP_EXPIRY",
        "message": "INVALID_OTP_MESSAGE",
    }

    to: Text = Field(
        max_length=64,
        description="One number; a local number is read with the account's region and "
        "answered in E.164.",
    )
    sender: OptionalText = Field(
        None,
        alias="from",
        description="Sender id: 3–11 letters/digits, or a number of up to 15 digits "
        "(default: the account's default sender).",
    )
    length: int = Field(
        otp.DEFAULT_LENGTH,
        ge=otp.MIN_LENGTH,
        le=otp.MAX_LENGTH,
        description="Digits of the code.",
    )
    expiry_minutes: int = Field(
        otp.DEFAULT_EXPIRY_MINUTES,
        ge=1,
        le=otp.MAX_EXPIRY_MINUTES,
        description="Minutes the code stays valid (the SMS is not submitted after that either).",
    )
    message: Text = Field(
        otp.DEFAULT_MESSAGE,
        min_length=1,
        max_length=1600,
        description="The text, with `{{code}}` or `##OTP##` exactly once where the code goes.",
    )

    @field_validator("to")
    @classmethod
    def _to(cls, value: str, info: ValidationInfo) -> str:
        return _phone(value, info)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        return checked(check_sender)(value)

    @field_validator("message")
    @classmethod
    def _message(cls, value: str, info: ValidationInfo) -> str:
        checked(otp.check_template)(value)
        # The longest code in place of the placeholder must still fit the body limit.
        limit = (info.context or {}).get("max_body_chars", 1600)
        longest = otp.render(value, "0" * otp.MAX_LENGTH)
        if len(longest) > limit:
            raise PydanticCustomError(
                "BODY_TOO_LONG",
                f"the message with its code has up to {len(longest)} characters; "
                f"the maximum is {limit}",
            )
        return value


class OtpSent(BaseModel):
    """The code is on its way: its SMS is an ordinary message (status, charge, webhooks),
    stored and shown with the code masked."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "5b0c8e0f-2f8e-4c52-9a77-1f6a3b9d2c11",
                    "message_id": "0b5d7f0e-8a1e-4f43-bb3f-5f4e8f1f9a10",
                    "to": "+14155552671",
                    "status": "queued",
                    "expires_at": "2025-01-01T12:10:00Z",
                    "encoding": "GSM7",
                    "segments": 1,
                    "estimated_cost": 1,
                }
            ]
        }
    )

    id: UUID = Field(description="The OTP: pass it with the code to POST /v1/otp/verify.")
    message_id: UUID = Field(description="The SMS that carries the code (GET /v1/messages/{id}).")
    to: str = Field(description="E.164")
    status: MessageStatus = Field(description="The SMS's status.")
    expires_at: datetime
    encoding: EncodingName
    segments: int
    estimated_cost: Number


VerifyStatusName = Literal[
    "verified", "invalid_code", "expired", "already_used", "too_many_attempts", "not_found"
]

CodeText = Annotated[str, BeforeValidator(_code_text)]


class OtpVerify(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"to": "+14155552671", "code": "042817"}]}
    )

    error_codes: ClassVar[dict[str, str]] = {
        "code:missing": "MISSING_CODE",
        "code": "INVALID_CODE",
        "to": "INVALID_PHONE_NUMBER",
        "id": "INVALID_ID",
    }

    code: CodeText = Field(
        repr=False, description="The digits the recipient got (a string keeps leading zeros)."
    )
    to: Text | None = Field(
        None,
        max_length=64,
        description="The number the code was sent to: its newest code is checked.",
    )
    id: UUID | None = Field(None, description="The OTP id POST /v1/otp answered.")

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        digits = value.strip()
        if not (1 <= len(digits) <= otp.MAX_LENGTH and digits.isascii() and digits.isdigit()):
            raise PydanticCustomError("INVALID_CODE", f"`code` must be 1–{otp.MAX_LENGTH} digits")
        return digits

    @field_validator("to", mode="before")
    @classmethod
    def _blank_to(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("to")
    @classmethod
    def _to(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _phone(value, info)

    @model_validator(mode="after")
    def _target(self) -> OtpVerify:
        if self.to is None and self.id is None:
            raise PydanticCustomError(
                "MISSING_RECIPIENT", "give `to` (the number) or `id` (the OTP) with the code"
            )
        return self


class OtpVerified(BaseModel):
    """`valid` is true only for `verified`; a code verifies once."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "valid": True,
                    "id": "5b0c8e0f-2f8e-4c52-9a77-1f6a3b9d2c11",
                    "to": "+14155552671",
                    "status": "verified",
                },
                {"valid": False, "id": None, "to": None, "status": "not_found"},
            ]
        }
    )

    valid: bool
    id: UUID | None = Field(description="The OTP checked (null when none was found).")
    to: str | None
    status: VerifyStatusName
