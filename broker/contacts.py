"""Contacts and groups of an account: the audience a send to groups reaches.

A contact is one phone number of the account (E.164, unique in it) with optional names, an
email and custom ``fields`` (text values a template's ``{{key}}`` fills in). A group is a
named set of the account's contacts; a contact may belong to many. Memberships always carry
the caller's account, so the schema itself refuses a link across accounts (sql/011).

The ``parse_*`` checks are pure and shared by every way contacts arrive (the JSON API, a CSV
import): each raises InputError with a stable code and the field. SQL: broker.store.contacts
and broker.store.groups.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import asyncpg

from broker.errors import Conflict, InputError, NotFound
from broker.phone import to_e164
from broker.store import Db
from broker.store import contacts as store
from broker.store import groups as group_store
from broker.text import has_unstorable

ContactRow = store.ContactRow
GroupRow = group_store.GroupRow

MAX_PHONE_INPUT: Final = 40
MAX_NAME: Final = 100
MAX_EMAIL: Final = 254
#: Custom fields a contact has, stored: a merge (an import) is held to it too, by the CHECK
#: contacts_fields_cap (sql/017, which writes the number out).
MAX_FIELDS: Final = 50
MAX_FIELD_KEY: Final = 64
MAX_FIELD_VALUE: Final = 500
MAX_GROUP_NAME: Final = 100
#: Groups one contact may be given in one request (a contact may join more, a call at a time).
MAX_GROUP_IDS: Final = 100
#: Contacts one request may add to a group.
MAX_CONTACT_IDS: Final = 1000

#: Plausible, not RFC 5322: one @, no spaces, a dot in the domain, no empty label.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")
#: What a LIKE pattern treats as special (backslash is PostgreSQL's default escape).
_LIKE_SPECIAL = re.compile(r"([\\%_])")


def parse_phone(raw: Any, region: str, *, field: str = "phone") -> str:
    """E.164, reading a local number as the account's region does; else INVALID_PHONE_NUMBER."""
    e164 = None
    if isinstance(raw, str) and 0 < len(raw) <= MAX_PHONE_INPUT:
        e164 = to_e164(raw.strip(), region)
    if e164 is None:
        raise InputError(
            f"`{field}` is not a valid phone number (E.164, or a local number of {region})",
            code="INVALID_PHONE_NUMBER",
            field=field,
        )
    return e164


def parse_name(raw: Any, *, field: str) -> str | None:
    """A first or last name, trimmed; blank or null is none."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InputError(f"`{field}` must be text", code="INVALID_NAME", field=field)
    name = raw.strip()
    if not name:
        return None
    if len(name) > MAX_NAME or has_unstorable(name):
        raise InputError(
            f"`{field}` must be at most {MAX_NAME} storable characters",
            code="INVALID_NAME",
            field=field,
        )
    return name


def parse_email(raw: Any, *, field: str = "email") -> str | None:
    """A plausible address (kept as given, trimmed); blank or null is none."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    email = raw.strip() if isinstance(raw, str) else None
    if email is None or len(email) > MAX_EMAIL or not _EMAIL.match(email):
        raise InputError(
            f"`{field}` must be an email address like name@example.com (at most {MAX_EMAIL}"
            " characters)",
            code="INVALID_EMAIL",
            field=field,
        )
    return email


def _fields_error(message: str, field: str) -> InputError:
    return InputError(f"`{field}`: {message}", code="INVALID_FIELDS", field=field)


def field_text(value: Any) -> str | None:
    """A custom field's value as the text a template shows; None if not text, number or
    boolean (JSON ``true`` reads ``true``, as a customer wrote it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return value
    return None


def parse_fields(raw: Any, *, field: str = "fields") -> dict[str, str]:
    """Custom fields: at most 50 keys of 1–64 printable characters, each value text, a number
    or a boolean, kept as text of at most 500 characters. This checks one request's object;
    where fields are merged into stored ones (an import) the merged result is checked when
    written."""
    if not isinstance(raw, dict):
        raise _fields_error("must be an object of name → value", field)
    if len(raw) > MAX_FIELDS:
        raise _fields_error(f"at most {MAX_FIELDS} fields, got {len(raw)}", field)
    fields: dict[str, str] = {}
    for key, value in raw.items():
        if (
            not isinstance(key, str)
            or not 1 <= len(key) <= MAX_FIELD_KEY
            or not key.isprintable()
            or has_unstorable(key)
        ):
            raise _fields_error(
                f"a field name must be 1–{MAX_FIELD_KEY} printable characters", field
            )
        text = field_text(value)
        if text is None:
            raise _fields_error(f"{key!r} must be text, a number or a boolean", field)
        if len(text) > MAX_FIELD_VALUE or has_unstorable(text):
            raise _fields_error(
                f"{key!r} must be at most {MAX_FIELD_VALUE} storable characters", field
            )
        fields[key] = text
    return fields


def parse_group_name(raw: Any, *, field: str = "name") -> str:
    """A group's name, trimmed: 1–100 storable characters."""
    name = raw.strip() if isinstance(raw, str) else ""
    if not 1 <= len(name) <= MAX_GROUP_NAME or has_unstorable(name):
        raise InputError(
            f"`{field}` must be 1–{MAX_GROUP_NAME} characters, not only spaces",
            code="INVALID_NAME",
            field=field,
        )
    return name


def like_prefix(text: str) -> str:
    """``text`` as a LIKE pattern matching itself literally (``%`` appended by the query)."""
    return _LIKE_SPECIAL.sub(r"\\\1", text)


@dataclass(frozen=True, slots=True)
class NewContact:
    """A contact as a request gives it, every value already checked."""

    phone: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    fields: dict[str, str] | None = None
    group_ids: Sequence[UUID] = ()


@dataclass(frozen=True, slots=True)
class ContactChanges:
    """The values a PATCH names; ``given`` says which (a given None clears that value)."""

    given: frozenset[str]
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    fields: dict[str, str] | None = None
    group_ids: Sequence[UUID] = ()


def contact_not_found(contact_id: UUID) -> NotFound:
    return NotFound(f"contact {contact_id} not found")


def group_not_found(group_id: UUID) -> NotFound:
    return NotFound(f"group {group_id} not found")


def _exists(phone: str, existing: UUID | None) -> Conflict:
    which = f" ({existing})" if existing is not None else ""
    return Conflict(
        f"this account already has a contact with phone {phone}{which}", code="CONTACT_EXISTS"
    )


async def _hold_groups(conn: asyncpg.Connection, account_id: UUID, group_ids: list[UUID]) -> None:
    """NotFound naming the first id that is no group of the account; the others are locked
    against deletion until the transaction ends, so the memberships written next hold."""
    found = await group_store.hold(conn, account_id, group_ids)
    for group_id in group_ids:
        if group_id not in found:
            raise group_not_found(group_id)


async def create_contact(conn: asyncpg.Connection, account_id: UUID, new: NewContact) -> ContactRow:
    """The contact and its memberships, all or nothing; Conflict if the phone is taken."""
    group_ids = list(dict.fromkeys(new.group_ids))
    async with conn.transaction():
        await _hold_groups(conn, account_id, group_ids)
        contact_id = await store.insert(
            conn,
            account_id,
            phone=new.phone,
            first_name=new.first_name,
            last_name=new.last_name,
            email=new.email,
            fields_json=json.dumps(new.fields or {}),
        )
        if contact_id is None:
            raise _exists(new.phone, await store.id_by_phone(conn, account_id, new.phone))
        if group_ids:
            await store.join_groups(conn, account_id, contact_id, group_ids)
        row = await store.get(conn, account_id, contact_id)
    assert row is not None  # written in this transaction
    return row


async def update_contact(
    conn: asyncpg.Connection, account_id: UUID, contact_id: UUID, changes: ContactChanges
) -> ContactRow:
    """Only the named values change; ``group_ids`` replaces the memberships, ``fields`` the
    whole object. Conflict if the new phone is another contact's; InputError if the contact
    would keep more than MAX_FIELDS fields (only one stored before sql/017 can have them:
    given fields are checked already)."""
    given = changes.given
    try:
        async with conn.transaction():
            updated = await store.update(
                conn,
                account_id,
                contact_id,
                given=given,
                phone=changes.phone,
                first_name=changes.first_name,
                last_name=changes.last_name,
                email=changes.email,
                fields_json=json.dumps(changes.fields or {}),
            )
            if not updated:
                raise contact_not_found(contact_id)
            if "group_ids" in given:
                group_ids = list(dict.fromkeys(changes.group_ids))
                await _hold_groups(conn, account_id, group_ids)
                await store.replace_groups(conn, account_id, contact_id, group_ids)
            row = await store.get(conn, account_id, contact_id)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name != store.PHONE_TAKEN or changes.phone is None:
            raise
        raise _exists(
            changes.phone, await store.id_by_phone(conn, account_id, changes.phone)
        ) from None
    except asyncpg.CheckViolationError as exc:
        if exc.constraint_name != store.FIELDS_CAP:
            raise
        raise _fields_error(
            f"this contact has more than {MAX_FIELDS} fields (stored before the limit was"
            f" enforced): give `fields` with at most {MAX_FIELDS} to replace them, with this"
            " change or before it",
            "fields",
        ) from None
    assert row is not None  # updated in this transaction
    return row


async def get_contact(db: Db, account_id: UUID, contact_id: UUID) -> ContactRow:
    row = await store.get(db, account_id, contact_id)
    if row is None:
        raise contact_not_found(contact_id)
    return row


async def delete_contact(db: Db, account_id: UUID, contact_id: UUID) -> None:
    """The contact and its memberships go (the schema cascades)."""
    if not await store.delete(db, account_id, contact_id):
        raise contact_not_found(contact_id)


async def contact_page(
    db: Db,
    account_id: UUID,
    *,
    group_id: UUID | None = None,
    phone: str | None = None,
    q: str | None = None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[ContactRow]:
    """Newest contact first; ``group_id`` must be a group of the account (else NotFound),
    ``q`` is a prefix of the first or the last name in any case."""
    if group_id is not None and await group_store.get(db, account_id, group_id) is None:
        raise group_not_found(group_id)
    return await store.page(
        db,
        account_id,
        group_id=group_id,
        phone=phone,
        name_prefix=None if q is None else like_prefix(q),
        after=after,
        limit=limit,
    )


async def create_group(db: Db, account_id: UUID, name: str) -> GroupRow:
    row = await group_store.insert(db, account_id, name)
    if row is None:
        raise _group_exists(name)
    return row


def _group_exists(name: str) -> Conflict:
    return Conflict(f"this account already has a group named {name!r}", code="GROUP_EXISTS")


async def group_page(
    db: Db, account_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
) -> list[GroupRow]:
    return await group_store.page(db, account_id, after=after, limit=limit)


async def get_group(db: Db, account_id: UUID, group_id: UUID) -> GroupRow:
    row = await group_store.get(db, account_id, group_id)
    if row is None:
        raise group_not_found(group_id)
    return row


async def rename_group(db: Db, account_id: UUID, group_id: UUID, name: str) -> GroupRow:
    try:
        row = await group_store.rename(db, account_id, group_id, name)
    except asyncpg.UniqueViolationError as exc:
        raise _group_exists(name) from exc
    if row is None:
        raise group_not_found(group_id)
    return row


async def delete_group(db: Db, account_id: UUID, group_id: UUID) -> None:
    """The group and its memberships go; its contacts stay."""
    if not await group_store.delete(db, account_id, group_id):
        raise group_not_found(group_id)


async def add_members(
    conn: asyncpg.Connection, account_id: UUID, group_id: UUID, contact_ids: Sequence[UUID]
) -> tuple[int, int]:
    """(newly added, members now); NotFound naming the first id that is no contact of the
    account, and then nobody is added. Contacts already members count as not added."""
    wanted = list(dict.fromkeys(contact_ids))
    async with conn.transaction():
        if not await group_store.hold(conn, account_id, [group_id]):
            raise group_not_found(group_id)
        found = await store.hold(conn, account_id, wanted)
        for contact_id in wanted:
            if contact_id not in found:
                raise contact_not_found(contact_id)
        added = await group_store.add_members(conn, account_id, group_id, wanted)
        members = await group_store.member_count(conn, account_id, group_id)
    return added, members


async def remove_member(db: Db, account_id: UUID, group_id: UUID, contact_id: UUID) -> None:
    """The contact leaves the group (it stays a contact); NotFound if it was not a member."""
    if await group_store.remove_member(db, account_id, group_id, contact_id):
        return
    if await group_store.get(db, account_id, group_id) is None:
        raise group_not_found(group_id)
    raise NotFound(f"contact {contact_id} is not a member of group {group_id}")
