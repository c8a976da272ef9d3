"""Data access, one module per aggregate: the SQL of each as named constants, run by small
typed functions over asyncpg (parameters only, never values formatted into SQL).

accounts, ledger (every credit movement), keys, connectors (and routes), inbound (numbers),
webhooks (endpoints and their delivery log), messages, idempotency. Validation and the errors
a caller sees stay with the domain modules that call these; here is only what PostgreSQL is
asked.
"""

from __future__ import annotations

import asyncpg

#: What a query runs on: a pool (one statement, its own connection) or a connection (inside
#: the caller's transaction).
Db = asyncpg.Pool | asyncpg.Connection
