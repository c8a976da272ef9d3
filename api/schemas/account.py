"""The account's credits."""

from __future__ import annotations

from pydantic import BaseModel

from api.schemas.common import Number


class Balance(BaseModel):
    balance: Number
    currency: str
    status: str
