"""Refunds moved to broker.store.ledger, where every credit movement lives; this name stays
only until workers/submit.py imports it from there."""

from __future__ import annotations

from broker.store.ledger import refund_failed

__all__ = ["refund_failed"]
