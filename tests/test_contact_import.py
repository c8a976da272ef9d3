"""Contacts from CSV end to end: POST /v1/contacts/import over the real API (real keys, real
database), and the operator's `smsbroker contacts import` as a real subprocess."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from broker.config import Settings
from tests.harness import ApiAccount, Client, api_account, api_client

SMSBROKER = str(Path(sys.executable).with_name("smsbroker"))
CSV = {"Content-Type": "text/csv"}


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with api_client(settings) as c:
        yield c


async def new_group(pool: asyncpg.Pool, who: ApiAccount) -> uuid.UUID:
    group_id: uuid.UUID = await pool.fetchval(
        "INSERT INTO contact_groups (account_id, name) VALUES ($1, $2) RETURNING id",
        who.id,
        f"group-{uuid.uuid4().hex[:6]}",
    )
    return group_id


async def upload(
    client: Client,
    who: ApiAccount,
    body: bytes | str,
    *,
    headers: dict[str, str] = CSV,
    **params: str,
) -> tuple[int, Any]:
    data = body.encode() if isinstance(body, str) else body
    async with client.post(
        "/v1/contacts/import", data=data, headers={**who.headers, **headers}, params=params
    ) as resp:
        return resp.status, await resp.json()


async def contacts(pool: asyncpg.Pool, who: ApiAccount) -> dict[str, tuple[Any, ...]]:
    rows = await pool.fetch(
        "SELECT phone, first_name, last_name, email, fields FROM contacts WHERE account_id = $1",
        who.id,
    )
    return {
        r["phone"]: (r["first_name"], r["last_name"], r["email"], json.loads(r["fields"]))
        for r in rows
    }


async def members(pool: asyncpg.Pool, group_id: uuid.UUID) -> set[str]:
    rows = await pool.fetch(
        "SELECT c.phone FROM group_members m JOIN contacts c ON c.id = m.contact_id"
        " WHERE m.group_id = $1 AND m.account_id = c.account_id",
        group_id,
    )
    return {r["phone"] for r in rows}


BAD_EMAIL = "`email` must be an email address like name@example.com (at most 254 characters)"
MIXED = (
    "\ufeffPhone,First Name,last-name,EMAIL,City,Plan\r\n"
    "(415) 555-2671,Ada,Lovelace,ada@example.com,London,gold\r\n"
    "12,Bad,Phone,,,\r\n"  # row 3
    "\r\n"  # row 4: blank
    '+233 20 123 4567,"Kofi, Jr.","Mensah","",Accra,\r\n'  # row 5
    "+14155552672,Too,Few\r\n"  # row 6
    '4155552673,"Multi\nLine",X,not-an-email,,\r\n'  # row 7 (one row over two lines)
    "4155552674,,,,,\r\n"  # row 8: a phone alone
)


async def test_good_rows_are_stored_and_bad_ones_listed_by_row(
    client: Client, pool: asyncpg.Pool
) -> None:
    who = await api_account(pool)
    status, body = await upload(client, who, MIXED)
    assert status == 200, body
    assert body == {
        "created": 3,
        "updated": 0,
        "failed": 3,
        "errors": [
            {"row": 3, "field": "phone", "message": "'12' is not a valid phone number"},
            {"row": 6, "field": None, "message": "the row has 3 cells, the header 6"},
            {"row": 7, "field": "email", "message": BAD_EMAIL},
        ],
        "errors_truncated": False,
    }
    assert await contacts(pool, who) == {
        "+14155552671": ("Ada", "Lovelace", "ada@example.com", {"City": "London", "Plan": "gold"}),
        "+233201234567": ("Kofi, Jr.", "Mensah", None, {"City": "Accra"}),
        "+14155552674": (None, None, None, {}),
    }


async def test_reimport_updates_merges_fields_and_a_repeated_phone_updates(
    client: Client, pool: asyncpg.Pool
) -> None:
    who = await api_account(pool)
    first = "phone;first_name;last_name;tier;city\n4155552671;Ada;Lovelace;gold;London\n"
    assert (await upload(client, who, first))[1]["created"] == 1
    # Semicolons and tabs alike; empty cells keep what is stored, fields merge; the same
    # phone twice: created once, then updated, in one file.
    again = (
        "phone\tfirst_name\tlast_name\ttier\tpets\n"
        "+1 415 555 2671\tAugusta\t\tplatinum\t2\n"
        "4155559999\tNew\t\t\t\n"
        "415-555-9999\t\tLater\t\tcat\n"
    )
    status, body = await upload(client, who, again)
    assert status == 200, body
    assert (body["created"], body["updated"], body["failed"]) == (1, 2, 0)
    assert await contacts(pool, who) == {
        "+14155552671": (
            "Augusta",
            "Lovelace",
            None,
            {"tier": "platinum", "city": "London", "pets": "2"},
        ),
        "+14155559999": ("New", "Later", None, {"pets": "cat"}),
    }
    # The same file again: nothing new, every row an update, still two contacts.
    status, body = await upload(client, who, again)
    assert (body["created"], body["updated"], body["failed"]) == (0, 3, 0)
    assert len(await contacts(pool, who)) == 2


async def test_group_id_joins_the_group_and_another_accounts_group_is_404(
    client: Client, pool: asyncpg.Pool
) -> None:
    who, other = await api_account(pool), await api_account(pool)
    group = await new_group(pool, who)
    await upload(client, who, "phone\n4155550100\n")
    status, body = await upload(client, who, "phone\n4155550100\n4155550101\n", group_id=str(group))
    assert status == 200, body
    assert (body["created"], body["updated"]) == (1, 1)
    assert await members(pool, group) == {"+14155550100", "+14155550101"}
    # Already members: fine, nothing doubled.
    status, body = await upload(client, who, "phone\n4155550101\n", group_id=str(group))
    assert (status, body["updated"]) == (200, 1)
    assert await members(pool, group) == {"+14155550100", "+14155550101"}

    for group_id in (group, uuid.uuid4()):
        status, body = await upload(client, other, "phone\n4155550102\n", group_id=str(group_id))
        assert (status, body["error"]["code"]) == (404, "NOT_FOUND"), body
    assert await contacts(pool, other) == {}
    assert await members(pool, group) == {"+14155550100", "+14155550101"}

    status, body = await upload(client, other, "phone\n4155550102\n", group_id="nope")
    assert (status, body["error"]["code"], body["error"]["field"]) == (
        400,
        "INVALID_GROUP_ID",
        "group_id",
    )


UNSUPPORTED = "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize(
    ("body", "headers", "status", "code", "says"),
    [
        ("phone\n1\n", {"Content-Type": "application/json"}, 415, UNSUPPORTED, "text/csv"),
        ("phone\n1\n", {"Content-Type": "text/plain"}, 415, UNSUPPORTED, "text/csv"),
        ("", CSV, 400, "INVALID_CSV", "empty"),
        ("\ufeff\r\n\r\n", CSV, 400, "INVALID_CSV", "empty"),
        ("name,email\nAda,a@b.co\n", CSV, 400, "INVALID_CSV", "`phone`"),
        (b"ph\xffone\n1\n", CSV, 400, "INVALID_CSV", "UTF-8"),
        ('"phone\n4155550100\n', CSV, 400, "INVALID_CSV", "never closed"),
    ],
)
async def test_a_file_refused_whole_is_a_clear_error_and_changes_nothing(
    client: Client,
    pool: asyncpg.Pool,
    body: str | bytes,
    headers: dict[str, str],
    status: int,
    code: str,
    says: str,
) -> None:
    who = await api_account(pool)
    got, answer = await upload(client, who, body, headers=headers)
    assert got == status, answer
    assert answer["error"]["code"] == code
    assert says in answer["error"]["message"]
    assert await contacts(pool, who) == {}


async def test_charset_parameter_is_accepted_and_errors_beyond_1000_are_truncated(
    client: Client, pool: asyncpg.Pool
) -> None:
    who = await api_account(pool)
    body = "phone,first_name\n4155550100,Ok\n" + "nope,x\n" * 1200 + "4155550101,Also\n"
    status, answer = await upload(
        client, who, body, headers={"Content-Type": "text/csv; charset=utf-8"}
    )
    assert status == 200, answer
    assert (answer["created"], answer["failed"], answer["errors_truncated"]) == (2, 1200, True)
    assert len(answer["errors"]) == 1000
    assert answer["errors"][-1]["row"] == 1002
    assert set(await contacts(pool, who)) == {"+14155550100", "+14155550101"}


async def test_a_body_declared_over_50_mb_is_413_before_it_is_read(
    client: Client, pool: asyncpg.Pool
) -> None:
    who = await api_account(pool)
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    head = (
        "POST /v1/contacts/import HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
        f"Authorization: {who.headers['Authorization']}\r\n"
        f"Content-Length: {51 * 1024 * 1024}\r\n\r\nphone\n"
    )
    writer.write(head.encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"PAYLOAD_TOO_LARGE" in answer


def smsbroker(pg_dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": pg_dsn}
    return subprocess.run(
        [SMSBROKER, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


async def test_cli_imports_the_same_way_and_prints_counts_and_errors(
    pool: asyncpg.Pool, pg_dsn: str, tmp_path: Path
) -> None:
    who = await api_account(pool)
    group = await new_group(pool, who)
    path = tmp_path / "contacts.csv"
    path.write_text(MIXED, newline="")

    done = await asyncio.to_thread(
        smsbroker, pg_dsn, "contacts", "import", str(who.id), str(path), "--group", str(group)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "created 3, updated 0, failed 3",
        "row 3  phone: '12' is not a valid phone number",
        "row 6  the row has 3 cells, the header 6",
        f"row 7  email: {BAD_EMAIL}",
    ]
    assert done.stderr == ""  # no progress bar when stderr is not a terminal
    stored = await contacts(pool, who)
    assert set(stored) == {"+14155552671", "+233201234567", "+14155552674"}
    assert await members(pool, group) == set(stored)

    done = await asyncio.to_thread(
        smsbroker, pg_dsn, "contacts", "import", str(who.id), str(path), "--json"
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["created"], answer["updated"], answer["failed"]) == (0, 3, 3)
    assert [e["row"] for e in answer["errors"]] == [3, 6, 7]
    assert answer["errors_truncated"] is False


async def test_cli_refuses_a_missing_file_an_unknown_account_or_group_in_one_line(
    pool: asyncpg.Pool, pg_dsn: str, tmp_path: Path
) -> None:
    who, other = await api_account(pool), await api_account(pool)
    path = tmp_path / "c.csv"
    path.write_text("phone\n4155550100\n")
    cases = [
        ([str(who.id), str(tmp_path / "missing.csv")], 2, "no such file"),
        ([str(uuid.uuid4()), str(path)], 1, "account"),
        ([str(who.id), str(path), "--group", str(await new_group(pool, other))], 1, "group"),
        ([str(who.id), str(path), "--group", str(uuid.uuid4())], 1, "group"),
        ([str(who.id), str(tmp_path)], 2, "not a file"),
    ]
    for args, code, says in cases:
        done = await asyncio.to_thread(smsbroker, pg_dsn, "contacts", "import", *args)
        assert done.returncode == code, (args, done.stderr)
        assert done.stdout == ""
        [line] = done.stderr.splitlines()
        assert line.startswith("error: ") and says in line, line
    done = await asyncio.to_thread(smsbroker, pg_dsn, "contacts", "import", "nope", str(path))
    assert done.returncode == 2 and "account id" in done.stderr
    assert await contacts(pool, who) == {}

    path.write_text("name\nAda\n")
    done = await asyncio.to_thread(smsbroker, pg_dsn, "contacts", "import", str(who.id), str(path))
    assert done.returncode == 2 and "`phone`" in done.stderr


def _on_a_terminal(pg_dsn: str, *args: str) -> tuple[int, str]:
    """`smsbroker ARGS` with stderr on a pseudo-terminal: exit code, what the terminal got."""
    primary, secondary = pty.openpty()
    # 100 columns: a terminal of no width shows no bar.
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {**os.environ, "DATABASE_URL": pg_dsn}
    proc = subprocess.Popen(
        [SMSBROKER, *args], env=env, stdout=subprocess.DEVNULL, stderr=secondary
    )
    os.close(secondary)
    seen = b""
    while True:
        try:
            piece = os.read(primary, 4096)
        except OSError:  # the other side closed
            break
        if not piece:
            break
        seen += piece
    os.close(primary)
    return proc.wait(timeout=60), seen.decode(errors="replace")


async def test_cli_shows_a_progress_bar_by_bytes_on_a_terminal(
    pool: asyncpg.Pool, pg_dsn: str, tmp_path: Path
) -> None:
    who = await api_account(pool)
    path = tmp_path / "c.csv"
    path.write_text("phone\n" + "".join(f"415555{n:04d}\n" for n in range(2000)))
    code, terminal = await asyncio.to_thread(
        _on_a_terminal, pg_dsn, "contacts", "import", str(who.id), str(path)
    )
    assert code == 0, terminal
    assert "import: 100%" in terminal and f"{path.stat().st_size / 1000:.1f}k" in terminal
    assert len(await contacts(pool, who)) == 2000
