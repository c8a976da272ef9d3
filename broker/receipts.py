"""Carrier receipts applied to parts and messages, in one round trip per batch.

A receipt is looked for among the parts submitted through any connector of the same carrier
account (``connectors.scope``), since the bind a receipt comes back on need not be the one the
part went out on.

A part moves once, from sent to its final state, by the first final receipt applied to it (a
later, disagreeing one is only written in the history); a message becomes delivered when every part
is, undelivered as soon as one part is not. A receipt whose part is not recorded yet (it beat
its own submit_sm_resp into the database) is parked in pending_receipts and matched later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from uuid import UUID

import asyncpg

from broker import metrics
from broker.db import after_commit
from broker.queue_messages import ReceiptEvent
from broker.smpp.receipt import other_forms
from broker.status import PartStatus
from broker.store import receipts as store

#: Receipt states that end a part, and what they make of it. ACCEPTD and ENROUTE end nothing.
FINAL_STATES: dict[str, PartStatus] = {
    "DELIVRD": PartStatus.DELIVERED,
    "UNDELIV": PartStatus.UNDELIVERED,
    "EXPIRED": PartStatus.UNDELIVERED,
    "REJECTD": PartStatus.UNDELIVERED,
    "DELETED": PartStatus.UNDELIVERED,
    "UNKNOWN": PartStatus.UNDELIVERED,
}


@dataclass(frozen=True, slots=True)
class ReceiptUpdate:
    scope: str  # the carrier account the receipt came from: connectors.scope
    carrier_id: str
    state: str
    error: str | None

    @classmethod
    def from_event(cls, event: ReceiptEvent) -> ReceiptUpdate:
        """Receipts of the previous version carry no scope: their connector is their scope."""
        return cls(event.scope or event.connector, event.carrier_id, event.state, event.error)

    @property
    def part_status(self) -> PartStatus:
        return FINAL_STATES[self.state]

    @property
    def error_code(self) -> str | None:
        if self.state == "DELIVRD":
            return None
        return f"{self.state}:{self.error}" if self.error else self.state


async def settle_unreceipted(
    conn: asyncpg.Connection, older_than: timedelta, *, limit: int = 1000
) -> list[asyncpg.Record]:
    """Messages sent longer ago than ``older_than`` with no final receipt end undelivered.

    Every accepted message reaches a final state, even when its carrier never reports.
    """
    return await store.settle_unreceipted(conn, older_than, limit)


def first_final(
    updates: list[ReceiptUpdate],
) -> tuple[list[ReceiptUpdate], list[ReceiptUpdate]]:
    """One final receipt per part, the first one read (the one the carrier had acknowledged
    first), and the later finals for the same parts; intermediate states are dropped."""
    chosen: dict[tuple[str, str], ReceiptUpdate] = {}
    later: list[ReceiptUpdate] = []
    for u in updates:
        if u.state not in FINAL_STATES:
            continue
        if (u.scope, u.carrier_id) in chosen:
            later.append(u)
        else:
            chosen[(u.scope, u.carrier_id)] = u
    return list(chosen.values()), later


async def apply_receipts(
    conn: asyncpg.Connection, updates: list[ReceiptUpdate], *, park_unknown: bool = True
) -> list[asyncpg.Record]:
    """Apply final receipts; return the rows of messages that reached a final state.

    A part takes the first final receipt applied to it; a later one changes nothing and, if it
    disagrees, is written in the message's history. Run it inside broker.db.transaction(),
    whose commit counts the receipts parked and the latencies of the parts settled.
    """
    updates, later = first_final(updates)
    if not updates:
        return []
    parked = 0
    touched = await store.update_parts(
        conn,
        [u.scope for u in updates],
        [u.carrier_id for u in updates],
        [u.part_status for u in updates],
        [u.error_code for u in updates],
    )
    applied = {(r["scope"], r["carrier_id"]) for r in touched}
    unapplied = [u for u in updates if (u.scope, u.carrier_id) not in applied] + later
    if unapplied:
        found = await store.note_late(
            conn,
            [u.scope for u in unapplied],
            [u.carrier_id for u in unapplied],
            [u.state for u in unapplied],
            [u.part_status for u in unapplied],
        )
        unknown = [u for u in unapplied if (u.scope, u.carrier_id) not in found]
        reread, unknown = await _in_other_bases(conn, unknown)
        touched += reread
        # Park what found no part, without asking why: its part may not be recorded yet, or
        # may have been committed a moment after these statements' snapshot. The sweep
        # applies it once the part is there, and drops it if the part is final already.
        if park_unknown and unknown:
            parked = await store.park(
                conn,
                [u.scope for u in unknown],
                [u.carrier_id for u in unknown],
                [u.state for u in unknown],
                [u.error for u in unknown],
            )
    latencies = [(r["connector"], max(0.0, r["latency"])) for r in touched]
    if parked or latencies:
        after_commit(conn, partial(_count, parked, latencies))
    message_ids: list[UUID] = list({r["message_id"] for r in touched})
    if not message_ids:
        return []
    return await store.settle_messages(conn, message_ids)


def _count(parked: int, latencies: list[tuple[str, float]]) -> None:
    if parked:
        metrics.RECEIPTS_PARKED.inc(parked)
    for connector, seconds in latencies:
        metrics.RECEIPT_LATENCY.labels(connector).observe(seconds)


async def _in_other_bases(
    conn: asyncpg.Connection, unknown: list[ReceiptUpdate]
) -> tuple[list[asyncpg.Record], list[ReceiptUpdate]]:
    """Apply what matches once its id is read in another base (other_forms); the rows
    touched, and the receipts still unknown."""
    tries = [(u, form) for u in unknown for form in other_forms(u.carrier_id)]
    if not tries:
        return [], unknown
    touched = await store.update_parts(
        conn,
        [u.scope for u, _ in tries],
        [form for _, form in tries],
        [u.part_status for u, _ in tries],
        [u.error_code for u, _ in tries],
    )
    matched = {(r["scope"], r["carrier_id"]) for r in touched}
    applied = {(u.scope, u.carrier_id) for u, form in tries if (u.scope, form) in matched}
    return touched, [u for u in unknown if (u.scope, u.carrier_id) not in applied]


async def match_pending(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Apply parked receipts whose parts have been recorded since."""
    rows = await store.matched_pending(conn)
    updates = [ReceiptUpdate(r["scope"], r["carrier_id"], r["state"], r["error"]) for r in rows]
    settled = await apply_receipts(conn, updates, park_unknown=False)
    await store.drop_pending(conn, [u.scope for u in updates], [u.carrier_id for u in updates])
    return settled
