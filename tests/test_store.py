"""The data-access modules (broker/store) on the real schema: ledger movements, connector
defaults, and the rule that the migrated modules hold no SQL of their own."""

from __future__ import annotations

import ast
import re
import uuid
from dataclasses import dataclass, fields
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from broker import accounts as operator
from broker.errors import InputError
from broker.status import MessageStatus, PartStatus, SenderIdStatus
from broker.store import accounts, connectors, ledger

ROOT = Path(__file__).resolve().parent.parent


async def _ledger(conn: asyncpg.Connection, account_id: uuid.UUID) -> list[tuple[str, Decimal]]:
    rows = await conn.fetch(
        "SELECT reason, amount FROM ledger WHERE account_id = $1 ORDER BY id", account_id
    )
    return [(r["reason"], r["amount"]) for r in rows]


async def test_credit_writes_a_topup_or_an_adjustment_row(conn: asyncpg.Connection) -> None:
    account_id = await accounts.insert(conn, "ledger", "US", "s")
    assert await ledger.credit(conn, account_id, Decimal("10.5")) == Decimal("10.5")
    assert await ledger.credit(conn, account_id, Decimal("-0.5")) == Decimal(10)
    assert await _ledger(conn, account_id) == [
        ("topup", Decimal("10.5")),
        ("adjustment", Decimal("-0.5")),
    ]
    books = await ledger.books(conn, account_id)
    assert books is not None and books.balance == books.ledger_sum == 10 and books.balanced


async def test_credit_below_zero_or_to_nobody_moves_nothing(conn: asyncpg.Connection) -> None:
    account_id = await accounts.insert(conn, "ledger", "US", "s")
    await ledger.credit(conn, account_id, Decimal(3))
    assert await ledger.credit(conn, account_id, Decimal("-3.0001")) is None
    assert await ledger.credit(conn, uuid.uuid4(), Decimal(5)) is None
    assert await _ledger(conn, account_id) == [("topup", Decimal(3))]
    with pytest.raises(ValueError, match="zero"):
        await ledger.credit(conn, account_id, Decimal(0))
    assert await ledger.books(conn, uuid.uuid4()) is None


async def test_refund_of_a_failed_message_happens_once(conn: asyncpg.Connection) -> None:
    account_id = await accounts.insert(conn, "refund", "US", "s")
    ids = {status: uuid.uuid4() for status in (MessageStatus.FAILED, MessageStatus.DELIVERED)}
    for status, mid in ids.items():
        await conn.execute(
            "INSERT INTO messages (id, account_id, to_number, body, encoding, segments, status,"
            " cost) VALUES ($1, $2, '+14155552671', 'b', 'GSM7', 2, $3, 2)",
            mid,
            account_id,
            status,
        )
    for _ in range(2):
        await ledger.refund_failed(conn, list(ids.values()))
    assert await _ledger(conn, account_id) == [("refund", Decimal(2))]
    books = await ledger.books(conn, account_id)
    assert books is not None and books.balance == 2 and books.balanced


@dataclass(frozen=True)
class _Charge:
    id: uuid.UUID
    account_id: uuid.UUID
    cost: Decimal


async def _message(conn: asyncpg.Connection, account_id: uuid.UUID) -> uuid.UUID:
    mid = uuid.uuid4()
    await conn.execute(
        "INSERT INTO messages (id, account_id, to_number, body, encoding, segments, status)"
        " VALUES ($1, $2, '+14155552671', 'b', 'GSM7', 1, 'queued')",
        mid,
        account_id,
    )
    return mid


async def test_charge_takes_what_each_balance_covers_and_books_it(
    conn: asyncpg.Connection,
) -> None:
    """A covered account pays its batch at once; the other pays message by message, in order,
    until its balance runs out; a free message is never unfunded; the books stay balanced."""
    rich = await accounts.insert(conn, "rich", "US", "s")
    poor = await accounts.insert(conn, "poor", "US", "s")
    await ledger.credit(conn, rich, Decimal(10))
    await ledger.credit(conn, poor, Decimal(3))
    batch = [
        _Charge(await _message(conn, rich), rich, Decimal(4)),
        _Charge(await _message(conn, poor), poor, Decimal(2)),
        _Charge(await _message(conn, poor), poor, Decimal(2)),  # 1 left: unfunded
        _Charge(await _message(conn, poor), poor, Decimal(0)),
        _Charge(await _message(conn, poor), poor, Decimal(1)),
        _Charge(await _message(conn, rich), rich, Decimal(6)),
    ]
    assert await ledger.charge(conn, batch) == [batch[2].id]
    for account_id, balance in ((rich, 0), (poor, 0)):
        books = await ledger.books(conn, account_id)
        assert books is not None and books.balance == balance and books.balanced
    rows = await conn.fetch(
        "SELECT message_id, amount FROM ledger WHERE reason = 'charge' AND account_id = ANY($1)",
        [rich, poor],
    )
    charged = {r["message_id"]: r["amount"] for r in rows}
    assert charged == {c.id: -c.cost for c in batch if c.cost and c is not batch[2]}


async def test_connector_spec_defaults_are_the_schema_defaults(conn: asyncpg.Connection) -> None:
    """A spec with only the required settings stores what the schema alone would store."""
    await conn.execute(
        "INSERT INTO connectors (name, host, port, system_id, password)"
        " VALUES ('bare', 'h', 1, 's', 'p')"
    )
    await connectors.insert(conn, connectors.ConnectorSpec("spec", "h", 1, "s", "p"))
    columns = ", ".join(connectors.CONNECTOR_COLUMNS)
    rows = await conn.fetch(
        f"SELECT {columns} FROM connectors WHERE name IN ('bare', 'spec') ORDER BY name"  # noqa: S608
    )
    bare, spec = (dict(r) for r in rows)
    assert {**bare, "name": "spec"} == spec
    assert [f.name for f in fields(connectors.ConnectorSpec)] == list(connectors.CONNECTOR_COLUMNS)


async def test_insert_or_repoint_moves_only_the_port(conn: asyncpg.Connection) -> None:
    spec = connectors.ConnectorSpec("sim-x", "127.0.0.1", 2775, "u", "p", binds=2)
    await connectors.insert_or_repoint(conn, spec)
    await conn.execute("UPDATE connectors SET binds = 5 WHERE name = 'sim-x'")
    await connectors.insert_or_repoint(conn, connectors.ConnectorSpec("sim-x", "h", 2999, "u", "p"))
    row = await conn.fetchrow("SELECT host, port, binds FROM connectors WHERE name = 'sim-x'")
    assert tuple(row) == ("127.0.0.1", 2999, 5)
    first = await connectors.add_route_if_absent(conn, "99977", "sim-x", Decimal(1))
    assert first is not None
    assert await connectors.add_route_if_absent(conn, "99977", "sim-x", Decimal(2)) is None
    routes = [r for r in await connectors.routes(conn) if r.prefix == "99977"]
    assert routes == [connectors.RouteRow("99977", "sim-x", Decimal(1), "udh8", False)]


def _text(value: ast.expr | None) -> str | None:
    """A string constant's text; an f-string's with ``{}`` where it interpolates (columns)."""
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return value.value
    if isinstance(value, ast.JoinedStr):
        return "".join(
            p.value if isinstance(p, ast.Constant) and isinstance(p.value, str) else "{}"
            for p in value.values
        )
    return None


def _sql_constants(path: Path) -> dict[str, str]:
    """Module-level string constants (f-strings too) whose text is SQL."""
    found: dict[str, str] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            value = _text(node.value)
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if value is not None and _SQL.search(value):
                found.update({t.id: value for t in targets if isinstance(t, ast.Name)})
    return found


_SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM)\b")
#: ``status = 'x'``, ``status <> 'x'`` and ``status IN ('x', 'y')`` in SQL text.
_STATUS_LITERALS = re.compile(r"\bstatus\s*(?:=|<>|IN\s*\()\s*((?:'[^']*'\s*,?\s*)+)")


def test_status_literals_in_store_sql_are_enum_values() -> None:
    allowed = (
        {s.value for s in MessageStatus}
        | {s.value for s in PartStatus}
        | {s.value for s in SenderIdStatus}
    )
    seen = 0
    for path in sorted((ROOT / "broker" / "store").glob("*.py")):
        for name, sql in _sql_constants(path).items():
            for group in _STATUS_LITERALS.findall(sql):
                values = set(re.findall(r"'([^']*)'", group))
                seen += len(values)
                assert values <= allowed, f"{path.name}:{name} uses {values - allowed}"
    assert seen > 0  # the scan reads the queries at all


#: The only modules outside broker/store that may hold SQL, and why.
SQL_ELSEWHERE = {
    "broker/migrate.py": "applies the sql/ migrations",
    "broker/db_admin.py": "creates and drops databases",
    "api/health.py": "the readiness probe's SELECT 1",
    "bench/database.py": "the bench's own database",
    "bench/search.py": "fills the search bench's own database",
}
CODE_DIRS = ("api", "workers", "cli", "broker", "bench", "smsc_sim")


def _modules_outside_store() -> list[str]:
    return sorted(
        str(path.relative_to(ROOT))
        for folder in CODE_DIRS
        for path in (ROOT / folder).rglob("*.py")
        if not str(path.relative_to(ROOT)).startswith("broker/store/")
    )


@pytest.mark.parametrize("module", _modules_outside_store())
def test_sql_lives_in_broker_store(module: str) -> None:
    text = (ROOT / module).read_text()
    if module in SQL_ELSEWHERE:
        return
    assert not _SQL.search(text), f"{module} holds SQL; it belongs in broker/store"


def test_the_modules_allowed_sql_exist() -> None:
    assert set(SQL_ELSEWHERE) <= set(_modules_outside_store())


def _is_named(path: Path, constant: ast.Constant) -> bool:
    """Whether this string is (part of) a named module-level constant, found by position."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if not all(isinstance(t, ast.Name) and t.id.isupper() for t in targets):
                continue
            for inner in ast.walk(node.value):
                if (
                    isinstance(inner, ast.Constant)
                    and inner.lineno == constant.lineno
                    and inner.col_offset == constant.col_offset
                ):
                    return True
    return False


def test_store_modules_name_their_queries() -> None:
    """Every query text in broker/store is a named module-level constant, none written inline."""
    for path in sorted((ROOT / "broker" / "store").glob("*.py")):
        named = _sql_constants(path)
        assert all(name.isupper() for name in named), f"{path.name}: {sorted(named)}"
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            if _SQL.search(node.value):
                assert _is_named(path, node), f"{path.name}:{node.lineno} inline SQL"


async def test_unknown_or_missing_connector_setting_is_refused(conn: asyncpg.Connection) -> None:
    """A misspelt setting was dropped silently (the connector got the default); now refused."""
    base = {"name": "typo", "host": "h", "port": 1, "system_id": "s", "password": "p"}
    with pytest.raises(InputError, match="unknown connector setting.*windows"):
        await operator.add_connector(conn, {**base, "windows": 50})
    with pytest.raises(InputError, match="needs host"):
        await operator.add_connector(conn, {k: v for k, v in base.items() if k != "host"})
    assert not await connectors.exists(conn, "typo")


#: Writes of credit: a ledger row, or a balance set (``balance = ...``, not ``==``).
_LEDGER_WRITE = re.compile(
    r"INSERT\s+INTO\s+ledger\b|\bSET\s+balance\b|\bbalance\s*=(?!=)|"
    r"INSERT\s+INTO\s+accounts\s*\([^)]*\bbalance\b",
    re.IGNORECASE,
)
PACKAGES = ("broker", "api", "workers", "cli", "bench", "smsc_sim")


def _ledger_writes(source: str) -> list[str]:
    """The string literals (f-strings' text too) of ``source`` that write credit."""
    found = []
    for node in ast.walk(ast.parse(source)):
        text = _text(node) if isinstance(node, ast.Constant | ast.JoinedStr) else None
        if text is not None and _LEDGER_WRITE.search(text):
            found.append(text)
    return found


def test_the_ledger_scan_sees_every_kind_of_write() -> None:
    caught = [
        'Q = "INSERT INTO ledger (account_id, amount) VALUES ($1, $2)"',
        'Q = """UPDATE accounts a\n   SET balance = a.balance - $2"""',
        'Q = "UPDATE accounts SET status = $2, balance=$3"',
        'Q = f"insert into LEDGER SELECT {cols}"',
        'Q = "INSERT INTO accounts (name, balance) VALUES ($1, $2)"',
    ]
    for source in caught:
        assert _ledger_writes(source), source
    for source in ("balance = 5\nok = balance == 3", 'Q = "SELECT balance FROM accounts"'):
        assert not _ledger_writes(source), source


def test_only_store_ledger_writes_credit() -> None:
    """Every charge, refund and top-up goes through broker/store/ledger.py: no other module
    writes the ledger table or an account's balance."""
    ledger_module = ROOT / "broker" / "store" / "ledger.py"
    assert _ledger_writes(ledger_module.read_text())  # the scan finds the real writes
    offenders = {
        str(path.relative_to(ROOT)): writes
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ledger_module and (writes := _ledger_writes(path.read_text()))
    }
    assert offenders == {}
