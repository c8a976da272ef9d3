-- Accounts, credits ledger, API keys, connectors and routes.

CREATE TABLE accounts (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    region          text NOT NULL DEFAULT 'US' CHECK (region ~ '^[A-Z]{2}$'),
    balance         numeric(18, 4) NOT NULL DEFAULT 0 CHECK (balance >= 0),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    webhook_secret  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Every change of a balance is a row here; balance = sum(amount) at all times.
CREATE TABLE ledger (
    id          bigserial PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id),
    amount      numeric(18, 4) NOT NULL CHECK (amount <> 0),
    reason      text NOT NULL CHECK (reason IN ('topup', 'charge', 'refund', 'adjustment')),
    message_id  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((reason IN ('charge', 'refund')) = (message_id IS NOT NULL)),
    CHECK (reason <> 'charge' OR amount < 0),
    CHECK (reason <> 'refund' OR amount > 0)
);
CREATE INDEX ledger_account ON ledger (account_id, id);
-- A message is charged at most once and refunded at most once, however often it is redelivered.
CREATE UNIQUE INDEX ledger_one_charge ON ledger (message_id) WHERE reason = 'charge';
CREATE UNIQUE INDEX ledger_one_refund ON ledger (message_id) WHERE reason = 'refund';

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id    uuid NOT NULL REFERENCES accounts (id),
    name          text NOT NULL DEFAULT '' CHECK (length(name) <= 100),
    prefix        text NOT NULL,
    key_hash      bytea NOT NULL UNIQUE,
    rate_limit    integer NOT NULL DEFAULT 60 CHECK (rate_limit BETWEEN 1 AND 1000000),
    channels      text[] NOT NULL DEFAULT '{sms}' CHECK (channels <@ ARRAY['sms', 'whatsapp']),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE connectors (
    name           text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    host           text NOT NULL CHECK (length(host) BETWEEN 1 AND 253),
    port           integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    system_id      text NOT NULL CHECK (length(system_id) BETWEEN 1 AND 15),
    password       text NOT NULL CHECK (length(password) <= 8),
    system_type    text NOT NULL DEFAULT '' CHECK (length(system_type) <= 12),
    binds          integer NOT NULL DEFAULT 1 CHECK (binds BETWEEN 1 AND 64),
    window_size    integer NOT NULL DEFAULT 10 CHECK (window_size BETWEEN 1 AND 1000),
    tps            numeric(10, 2) CHECK (tps > 0),
    bind_mode      text NOT NULL DEFAULT 'trx' CHECK (bind_mode IN ('trx', 'tx_rx')),
    dlr_id_format  text NOT NULL DEFAULT 'as-is' CHECK (dlr_id_format IN ('as-is', 'hex', 'dec')),
    long_mode      text NOT NULL DEFAULT 'udh8' CHECK (long_mode IN ('udh8', 'udh16', 'sar', 'payload')),
    gsm7_packed    boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE routes (
    id         bigserial PRIMARY KEY,
    prefix     text NOT NULL UNIQUE CHECK (prefix ~ '^[0-9]{0,15}$'),
    connector  text NOT NULL REFERENCES connectors (name),
    price      numeric(12, 4) NOT NULL DEFAULT 1 CHECK (price >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Long numbers, short codes and keywords whose inbound messages belong to an account.
CREATE TABLE numbers (
    number      text NOT NULL CHECK (number ~ '^\+?[0-9]{3,15}$'),
    keyword     text NOT NULL DEFAULT '' CHECK (keyword = upper(keyword)),
    account_id  uuid NOT NULL REFERENCES accounts (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (number, keyword)
);
