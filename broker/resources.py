"""The message resource as customers see it, in the API and in webhooks alike."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

MESSAGE_COLUMNS = (
    "id, account_id, batch_id, to_number, sender, encoding, segments, status, cost, client_ref,"
    " error_code, error_text, created_at, updated_at, sent_at, done_at, scheduled_at, expires_at,"
    " channel"
)


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def number(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def message_resource(row: Mapping[str, Any]) -> dict[str, Any]:
    error = None
    if row["error_code"] is not None:
        error = {"code": row["error_code"], "text": row["error_text"]}
    return {
        "id": str(row["id"]),
        "batch_id": str(row["batch_id"]) if row["batch_id"] else None,
        "to": row["to_number"],
        "from": row["sender"],
        "channel": row["channel"],
        "status": row["status"],
        "encoding": row["encoding"],
        "segments": row["segments"],
        "cost": number(row["cost"]),
        "client_ref": row["client_ref"],
        "error": error,
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "sent_at": iso(row["sent_at"]),
        "done_at": iso(row["done_at"]),
        "scheduled_at": iso(row.get("scheduled_at")),
        "expires_at": iso(row.get("expires_at")),
    }


def part_resource(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "seq": row["seq"],
        "connector": row["connector"],
        "carrier_id": row["carrier_id"],
        "status": row["status"],
        "command_status": row["command_status"],
        "error_code": row["error_code"],
        "submitted_at": iso(row["submitted_at"]),
        "done_at": iso(row["done_at"]),
    }
