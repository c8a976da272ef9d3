"""/v1/keys end to end: the real API over HTTP on a real database (issue 7, keys).

Create, list, read (the secret only in the answer that made it), revoke and expiry (403
API_KEY_DISABLED), regenerate (same key, new secret, old one refused), the narrowing rule (a
key never makes a key broader than itself), last_used_at written off the request path at most
once a minute, and tenant isolation.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest

from api.key_usage import KeyUsage
from api.server import start_api
from broker import accounts
from broker.config import Settings
from broker.keys import key_hash
from broker.store import keys as key_store


@dataclass
class Api:
    url: str
    http: aiohttp.ClientSession
    pool: asyncpg.Pool

    async def call(
        self, method: str, path: str, key: str, body: Any = None
    ) -> tuple[int, Any, str]:
        async with self.http.request(
            method, f"{self.url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as resp:
            text = await resp.text()
            return resp.status, (await resp.json() if text else None), text


@pytest.fixture(scope="module")
async def api(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Api]:
    runner = await start_api(settings, "127.0.0.1", 0)
    http = aiohttp.ClientSession()
    try:
        yield Api(f"http://127.0.0.1:{runner.addresses[0][1]}", http, pool)
    finally:
        await http.close()
        await runner.cleanup()


async def new_account(pool: asyncpg.Pool) -> uuid.UUID:
    async with pool.acquire() as conn:
        return await accounts.create_account(
            conn, f"keys-{uuid.uuid4().hex[:8]}", Decimal(10), "US"
        )


async def operator_key(
    pool: asyncpg.Pool,
    account_id: uuid.UUID,
    *,
    channels: tuple[str, ...] = ("sms", "whatsapp"),
    rate_limit: int = 100_000,
    expires_days: int | None = None,
) -> str:
    async with pool.acquire() as conn:
        made = await accounts.create_key(
            conn,
            account_id,
            name="operator",
            rate_limit=rate_limit,
            channels=channels,
            expires_days=expires_days,
        )
    return made.secret


async def key_count(pool: asyncpg.Pool, account_id: uuid.UUID) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM api_keys WHERE account_id = $1", account_id)
    return n


RESOURCE_FIELDS = {
    "id",
    "name",
    "prefix",
    "channels",
    "rate_limit_per_minute",
    "expires_at",
    "last_used_at",
    "revoked_at",
    "status",
    "created_at",
}


async def test_create_list_read_show_the_secret_only_once(api: Api) -> None:
    account = await new_account(api.pool)
    boss = await operator_key(api.pool, account, channels=("sms",))
    status, made, _ = await api.call("POST", "/v1/keys", boss, {"name": "billing"})
    assert status == 201, made
    assert set(made) == RESOURCE_FIELDS | {"secret"}
    secret = made["secret"]
    assert secret.startswith("sk_live_") and secret.startswith(made["prefix"])
    assert made["name"] == "billing" and made["status"] == "active"
    # Defaults: the caller's channels, 60 a minute, the caller's expiry (never).
    assert made["channels"] == ["sms"] and made["rate_limit_per_minute"] == 60
    assert made["expires_at"] is None and made["last_used_at"] is None
    assert made["revoked_at"] is None

    # The new key works, and manages the account's keys.
    status, listing, text = await api.call("GET", "/v1/keys", secret)
    assert status == 200, listing
    assert secret not in text and "secret" not in text
    assert made["id"] in [k["id"] for k in listing["data"]]
    assert len(listing["data"]) == 2 and listing["next_cursor"] is None
    assert all(set(k) == RESOURCE_FIELDS for k in listing["data"])
    status, one, text = await api.call("GET", f"/v1/keys/{made['id']}", boss)
    assert status == 200 and secret not in text
    assert {k: v for k, v in made.items() if k not in ("secret", "last_used_at")} == {
        k: v for k, v in one.items() if k != "last_used_at"
    }
    # Stored as a digest only.
    row = await api.pool.fetchrow("SELECT * FROM api_keys WHERE id = $1", uuid.UUID(made["id"]))
    assert row is not None and row["key_hash"] == key_hash(secret)
    assert not any(secret in str(v) for v in dict(row).values())


async def test_create_with_every_field_and_list_pages_newest_first(api: Api) -> None:
    account = await new_account(api.pool)
    boss = await operator_key(api.pool, account)
    body = {
        "name": "wa",
        "channels": ["whatsapp", "sms", "sms"],
        "rate_limit_per_minute": 500,
        "expires_in_days": 30,
    }
    status, made, _ = await api.call("POST", "/v1/keys", boss, body)
    assert status == 201, made
    assert made["channels"] == ["sms", "whatsapp"] and made["rate_limit_per_minute"] == 500
    expires = datetime.fromisoformat(made["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)
    for i in range(3):
        status, _, _ = await api.call("POST", "/v1/keys", boss, {"name": f"k{i}"})
        assert status == 201
    seen: list[str] = []
    cursor = ""
    while True:
        status, page, _ = await api.call("GET", f"/v1/keys?limit=2{cursor}", boss)
        assert status == 200, page
        seen += [k["name"] for k in page["data"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == ["k2", "k1", "k0", "wa", "operator"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x" * 101},
        {"channels": ["fax"]},
        {"channels": []},
        {"rate_limit_per_minute": 0},
        {"rate_limit_per_minute": 1_000_001},
        {"expires_in_days": 0},
        {"expires_in_days": 366},
        {"expires_in_days": "soon"},
        [],
    ],
)
async def test_bad_bodies_are_400_and_create_nothing(api: Api, body: Any) -> None:
    account = await new_account(api.pool)
    boss = await operator_key(api.pool, account)
    status, error, _ = await api.call("POST", "/v1/keys", boss, body)
    assert status == 400, error
    assert error["error"]["code"]
    assert await key_count(api.pool, account) == 1


async def test_bad_or_unknown_ids_are_404(api: Api) -> None:
    account = await new_account(api.pool)
    boss = await operator_key(api.pool, account)
    for key_id in ("not-a-uuid", str(uuid.uuid4())):
        for method, path in (
            ("GET", f"/v1/keys/{key_id}"),
            ("DELETE", f"/v1/keys/{key_id}"),
            ("POST", f"/v1/keys/{key_id}/regenerate"),
        ):
            status, error, _ = await api.call(method, path, boss)
            assert status == 404 and error["error"]["code"] == "NOT_FOUND", (method, path)
    status, error, _ = await api.call("GET", "/v1/keys?cursor=nonsense", boss)
    assert status == 400 and error["error"]["code"] == "INVALID_CURSOR"


async def test_revoked_key_is_refused_with_403(api: Api) -> None:
    account = await new_account(api.pool)
    boss = await operator_key(api.pool, account)
    _, made, _ = await api.call("POST", "/v1/keys", boss, {"name": "doomed"})
    assert (await api.call("GET", "/v1/keys", made["secret"]))[0] == 200
    status, revoked, text = await api.call("DELETE", f"/v1/keys/{made['id']}", boss)
    assert status == 200, revoked
    assert revoked["status"] == "revoked" and revoked["revoked_at"]
    assert made["secret"] not in text
    status, error, _ = await api.call("GET", "/v1/keys", made["secret"])
    assert status == 403 and error["error"]["code"] == "API_KEY_DISABLED"
    # Revoking again changes nothing; the key can still be read.
    status, again, _ = await api.call("DELETE", f"/v1/keys/{made['id']}", boss)
    assert status == 200 and again["revoked_at"] == revoked["revoked_at"]
    _, one, _ = await api.call("GET", f"/v1/keys/{made['id']}", boss)
    assert one["status"] == "revoked"
    # A revoked key cannot be brought back by a regenerate.
    status, error, _ = await api.call("POST", f"/v1/keys/{made['id']}/regenerate", boss)
    assert status == 409 and error["error"]["code"] == "KEY_NOT_ACTIVE"


async def test_a_key_may_revoke_itself(api: Api) -> None:
    account = await new_account(api.pool)
    boss = await operator_key(api.pool, account)
    _, made, _ = await api.call("POST", "/v1/keys", boss, {})
    status, _, _ = await api.call("DELETE", f"/v1/keys/{made['id']}", made["secret"])
    assert status == 200
    status, error, _ = await api.call("GET", f"/v1/keys/{made['id']}", made["secret"])
    assert status == 403 and error["error"]["code"] == "API_KEY_DISABLED"


async def test_expired_key_is_refused_with_403(api: Api) -> None:
    account = await new_account(api.pool)
    boss = await operator_key(api.pool, account)
    _, made, _ = await api.call("POST", "/v1/keys", boss, {"expires_in_days": 1})
    assert (await api.call("GET", "/v1/keys", made["secret"]))[0] == 200
    await api.pool.execute(
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(made["id"]),
    )
    status, error, _ = await api.call("GET", "/v1/keys", made["secret"])
    assert status == 403 and error["error"]["code"] == "API_KEY_DISABLED"
    _, one, _ = await api.call("GET", f"/v1/keys/{made['id']}", boss)
    assert one["status"] == "expired"


async def test_regenerate_gives_a_new_secret_and_refuses_the_old(api: Api) -> None:
    account = await new_account(api.pool)
    boss = await operator_key(api.pool, account)
    body = {"name": "rotating", "channels": ["whatsapp"], "rate_limit_per_minute": 77}
    _, made, _ = await api.call("POST", "/v1/keys", boss, {**body, "expires_in_days": 9})
    old = made["secret"]
    status, fresh, _ = await api.call("POST", f"/v1/keys/{made['id']}/regenerate", boss)
    assert status == 200, fresh
    assert fresh["secret"] != old and fresh["secret"].startswith(fresh["prefix"])
    same = ("id", "name", "channels", "rate_limit_per_minute", "expires_at", "created_at")
    assert {f: fresh[f] for f in same} == {f: made[f] for f in same}
    assert fresh["status"] == "active"
    assert (await api.call("GET", "/v1/keys", fresh["secret"]))[0] == 200
    status, error, _ = await api.call("GET", "/v1/keys", old)
    assert status == 403 and error["error"]["code"] == "API_KEY_DISABLED"
    # A second regenerate retires the second secret too; the first stays refused.
    _, third, _ = await api.call("POST", f"/v1/keys/{made['id']}/regenerate", fresh["secret"])
    for refused in (old, fresh["secret"]):
        status, error, _ = await api.call("GET", "/v1/keys", refused)
        assert status == 403 and error["error"]["code"] == "API_KEY_DISABLED"
    assert (await api.call("GET", "/v1/keys", third["secret"]))[0] == 200
    _, listing, text = await api.call("GET", "/v1/keys", third["secret"])
    assert third["secret"] not in text and len(listing["data"]) == 2


async def test_a_key_never_makes_a_broader_key(api: Api) -> None:
    account = await new_account(api.pool)
    narrow = await operator_key(
        api.pool, account, channels=("sms",), rate_limit=100, expires_days=10
    )
    refused = [
        ({"channels": ["whatsapp"]}, "channels"),
        ({"channels": ["sms", "whatsapp"]}, "channels"),
        ({"rate_limit_per_minute": 101}, "rate_limit_per_minute"),
        ({"expires_in_days": 11}, "expires_in_days"),
    ]
    for body, field in refused:
        status, error, _ = await api.call("POST", "/v1/keys", narrow, body)
        assert status == 403, (body, error)
        assert error["error"]["code"] == "KEY_SCOPE_EXCEEDED"
        assert error["error"]["field"] == field
    assert await key_count(api.pool, account) == 1

    # Within bounds it works; omitted settings inherit the caller's expiry.
    _, caller, _ = await api.call("GET", "/v1/keys", narrow)
    caller_expiry = caller["data"][0]["expires_at"]
    status, made, _ = await api.call(
        "POST", "/v1/keys", narrow, {"channels": ["sms"], "rate_limit_per_minute": 100}
    )
    assert status == 201, made
    assert made["expires_at"] == caller_expiry
    status, made, _ = await api.call("POST", "/v1/keys", narrow, {"expires_in_days": 9})
    assert status == 201 and made["expires_at"] < caller_expiry

    # A slow caller's default rate limit is its own, not 60.
    slow = await operator_key(api.pool, account, channels=("sms",), rate_limit=30)
    _, made, _ = await api.call("POST", "/v1/keys", slow, {})
    assert made["rate_limit_per_minute"] == 30


async def test_regenerate_by_a_narrower_key_narrows_the_key(api: Api) -> None:
    account = await new_account(api.pool)
    broad = await operator_key(api.pool, account, rate_limit=1000)
    narrow = await operator_key(
        api.pool, account, channels=("sms",), rate_limit=100, expires_days=5
    )
    wa_only = await operator_key(api.pool, account, channels=("whatsapp",))
    _, target, _ = await api.call("POST", "/v1/keys", broad, {"rate_limit_per_minute": 1000})
    assert target["channels"] == ["sms", "whatsapp"] and target["expires_at"] is None
    status, fresh, _ = await api.call("POST", f"/v1/keys/{target['id']}/regenerate", narrow)
    assert status == 200, fresh
    assert fresh["channels"] == ["sms"] and fresh["rate_limit_per_minute"] == 100
    _, listing, _ = await api.call("GET", "/v1/keys", narrow)
    narrow_row = next(k for k in listing["data"] if k["rate_limit_per_minute"] == 100)
    assert fresh["expires_at"] == narrow_row["expires_at"]
    # A key sharing no channel with the target may not regenerate it: nothing changes.
    status, error, _ = await api.call("POST", f"/v1/keys/{target['id']}/regenerate", wa_only)
    assert status == 403 and error["error"]["code"] == "KEY_SCOPE_EXCEEDED"
    assert (await api.call("GET", "/v1/keys", fresh["secret"]))[0] == 200


async def test_another_accounts_key_is_404_and_untouched(api: Api) -> None:
    alice = await operator_key(api.pool, await new_account(api.pool))
    bob = await operator_key(api.pool, await new_account(api.pool))
    _, made, _ = await api.call("POST", "/v1/keys", alice, {"name": "alice's"})
    for method, path in (
        ("GET", f"/v1/keys/{made['id']}"),
        ("DELETE", f"/v1/keys/{made['id']}"),
        ("POST", f"/v1/keys/{made['id']}/regenerate"),
    ):
        status, error, _ = await api.call(method, path, bob)
        assert status == 404 and error["error"]["code"] == "NOT_FOUND", (method, path)
    _, listing, _ = await api.call("GET", "/v1/keys", bob)
    assert made["id"] not in [k["id"] for k in listing["data"]]
    status, one, _ = await api.call("GET", f"/v1/keys/{made['id']}", made["secret"])
    assert status == 200 and one["status"] == "active"


async def _xmin(pool: asyncpg.Pool, key_id: str) -> tuple[Any, Any]:
    row = await pool.fetchrow(
        "SELECT xmin::text AS x, last_used_at FROM api_keys WHERE id = $1", uuid.UUID(key_id)
    )
    assert row is not None
    return row["x"], row["last_used_at"]


async def test_last_used_at_is_written_off_the_request_path_once_a_minute(api: Api) -> None:
    account = await new_account(api.pool)
    boss = await operator_key(api.pool, account)
    _, made, _ = await api.call("POST", "/v1/keys", boss, {})
    before = await _xmin(api.pool, made["id"])
    assert before[1] is None
    for _ in range(2):
        assert (await api.call("GET", "/v1/keys", made["secret"]))[0] == 200
    deadline = time.monotonic() + 10
    while (written := await _xmin(api.pool, made["id"]))[1] is None:
        assert time.monotonic() < deadline, "last_used_at was never written"
        await asyncio.sleep(0.2)
    assert written[0] != before[0]
    assert abs(written[1] - datetime.now(UTC)) < timedelta(seconds=10)
    # More requests within the minute: no further write (the row version stays).
    assert (await api.call("GET", "/v1/keys", made["secret"]))[0] == 200
    await asyncio.sleep(4)
    assert await _xmin(api.pool, made["id"]) == written
    _, one, _ = await api.call("GET", f"/v1/keys/{made['id']}", boss)
    assert datetime.fromisoformat(one["last_used_at"]) == written[1]


async def test_usage_recorder_batches_and_writes_at_most_once_a_minute(pool: asyncpg.Pool) -> None:
    account = await new_account(pool)
    keys = []
    for _ in range(3):
        secret = await operator_key(pool, account)
        row = await key_store.owner_by_hash(pool, key_hash(secret))
        assert row is not None
        keys.append(row["id"])
    usage = KeyUsage(pool, interval=3600)
    now = time.time()
    for key_id in keys * 3:
        usage.note(key_id, now)
    assert await usage.flush() == 3
    for key_id in keys:  # within the minute: not even noted
        usage.note(key_id, now + 30)
    assert await usage.flush() == 0
    # Another process's use within the minute does not move the time either.
    at = datetime.fromtimestamp(now + 30, UTC)
    assert await key_store.touch_used(pool, [(k, at) for k in keys]) == 0
    later = datetime.fromtimestamp(now + 61, UTC)
    assert await key_store.touch_used(pool, [(keys[0], later)]) == 1
    # Pending uses are written when the recorder stops.
    usage.start()
    usage.note(keys[1], now + 120)
    await usage.stop()
    moved = await pool.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1", keys[1])
    assert moved == datetime.fromtimestamp(now + 120, UTC)


async def test_revocation_reaches_every_api_process_within_a_second(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    assert Settings().auth_cache_seconds <= 1.0
    cached = replace(settings, auth_cache_seconds=Settings().auth_cache_seconds)
    runners = [await start_api(cached, "127.0.0.1", 0) for _ in range(2)]
    urls = [f"http://127.0.0.1:{r.addresses[0][1]}" for r in runners]
    account = await new_account(pool)
    boss = await operator_key(pool, account)
    try:
        async with aiohttp.ClientSession() as http:
            apis = [Api(u, http, pool) for u in urls]
            _, made, _ = await apis[0].call("POST", "/v1/keys", boss, {})
            for each in apis:  # both processes now hold the key in their cache
                assert (await each.call("GET", "/v1/keys", made["secret"]))[0] == 200
            status, _, _ = await apis[1].call("DELETE", f"/v1/keys/{made['id']}", boss)
            assert status == 200
            revoked = time.monotonic()
            for each in apis:
                while (await each.call("GET", "/v1/keys", made["secret"]))[0] != 403:
                    assert time.monotonic() - revoked < 1.2, "a process still takes the key"
                    await asyncio.sleep(0.05)
    finally:
        for runner in runners:
            await runner.cleanup()
