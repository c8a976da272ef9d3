"""schemathesis against the running API: every declared route, generated input, zero failures.

The API runs as its own process (`smsbroker api`) on this run's PostgreSQL database and RabbitMQ
vhost; schemathesis reads its /openapi.json and checks that no input gets a server error, that
every answer's status is declared and that every body matches its declared schema. Routes added
later are covered without touching this file.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.openapi import document
from broker import accounts
from broker.config import Settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _provision(dsn: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        account_id = await accounts.create_account(conn, "schemathesis", Decimal(10**9), "US")
        key = await accounts.create_key(conn, account_id, rate_limit=1_000_000)
        # The send examples' `from`: approved, so the documented example is a send that works.
        await conn.execute(
            "INSERT INTO sender_ids (account_id, sender_id, purpose, status, decided_at)"
            " VALUES ($1, 'Acme', 'schemathesis', 'approved', now())",
            account_id,
        )
        return key.secret
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def running_api(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API process's base URL; its log goes to a file printed if it fails to start."""
    key = asyncio.run(_provision(settings.database_url))
    port = _free_port()
    log_path = Path(tmp_path_factory.mktemp("api")) / "api.log"
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "AMQP_URL": settings.amqp_url,
        "QUEUE_PREFIX": "schemathesis",
        "WEBHOOK_ALLOW_PRIVATE": "1",
        "AUTH_CACHE_SECONDS": "0",
        "LOG_FORMAT": "json",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "api", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the API did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        os.environ["SCHEMATHESIS_TEST_KEY"] = key
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def _document() -> dict[str, Any]:
    """The document the app serves, built the same way without starting anything."""
    return document(create_app(Settings()))


schema = schemathesis.openapi.from_dict(_document())
#: Statuses answered per operation, filled by the generated calls.
SEEN: dict[str, set[int]] = {}


def test_the_running_api_serves_this_document(running_api: str) -> None:
    served = requests.get(f"{running_api}/openapi.json", timeout=5).json()
    assert served == json.loads(json.dumps(_document()))


@schema.parametrize()
@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
def test_every_route_conforms(case: schemathesis.Case, running_api: str) -> None:
    key = os.environ["SCHEMATHESIS_TEST_KEY"]
    response = case.call_and_validate(
        base_url=running_api, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS
    )
    SEEN.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)


def test_every_route_was_exercised_and_answered_successfully() -> None:
    """The generated calls reached every route, and each route succeeded at least once."""
    documented = {
        f"{method.upper()} {path}" for path, item in _document()["paths"].items() for method in item
    }
    assert documented <= set(SEEN)
    never_succeeded = {
        op: codes
        for op, codes in SEEN.items()
        if op in documented and not any(c < 300 for c in codes)
    }
    # Ids are random UUIDs: reading or deleting one that exists is covered by the other tests.
    assert set(never_succeeded) <= {
        "GET /v1/messages/{id}",
        "POST /v1/messages/{id}/cancel",
        "GET /v1/batches/{id}",
        "GET /v1/webhooks/{id}",
        "DELETE /v1/webhooks/{id}",
        "GET /v1/webhooks/{id}/deliveries",
        "GET /v1/sender-ids/{id}",
        "DELETE /v1/sender-ids/{id}",
        "GET /v1/inbound/{id}",
        "GET /v1/opt-outs/{phone}",
        "DELETE /v1/opt-outs/{phone}",
        "GET /v1/keys/{id}",
        "DELETE /v1/keys/{id}",
        "POST /v1/keys/{id}/regenerate",
        "GET /v1/contacts/{id}",
        "PATCH /v1/contacts/{id}",
        "DELETE /v1/contacts/{id}",
        "GET /v1/groups/{id}",
        "PATCH /v1/groups/{id}",
        "DELETE /v1/groups/{id}",
        "GET /v1/groups/{id}/contacts",
        "POST /v1/groups/{id}/contacts",
        "DELETE /v1/groups/{id}/contacts/{contact_id}",
        "GET /v1/templates/{id}",
        "PATCH /v1/templates/{id}",
        "DELETE /v1/templates/{id}",
        "POST /v1/templates/{id}/preview",
    }, never_succeeded
