"""Who a send to contacts and groups reaches, and what each recipient's contact fills in.

The send path reads here: the contacts behind a request's numbers (for a template's
``{{name}}``), the members of its groups a page at a time in phone order, and the background
expansions of sends too large to make in the request (batch_expansions).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from uuid import UUID

from broker.store import Db
from broker.templates import contact_values

CONTACTS_BY_PHONE = """
SELECT phone, first_name, last_name, email, fields FROM contacts
 WHERE account_id = $1 AND phone = ANY($2::text[])
"""


async def values_by_phone(
    db: Db, account_id: UUID, phones: Sequence[str]
) -> dict[str, dict[str, str]]:
    """Per number that is a contact of the account, the values it fills a template with."""
    if not phones:
        return {}
    rows = await db.fetch(CONTACTS_BY_PHONE, account_id, list(phones))
    return {
        r["phone"]: contact_values(
            r["phone"], r["first_name"], r["last_name"], r["email"], json.loads(r["fields"])
        )
        for r in rows
    }
