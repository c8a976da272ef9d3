"""The sender-ids routes (being built: see issue 7)."""

from __future__ import annotations

from api.contract import Endpoints

endpoints = Endpoints("sender-ids")
