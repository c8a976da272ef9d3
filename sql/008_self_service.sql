-- Customer self-service: key use, the account's settings and rotated callback secret, sender
-- IDs, opt-outs, OTP codes, scheduled and expiring messages, and the indexes of message search.

-- Written at most once a minute per key, off the request path.
ALTER TABLE api_keys ADD COLUMN last_used_at timestamptz;

ALTER TABLE accounts
    ADD COLUMN plan text NOT NULL DEFAULT 'standard' CHECK (length(plan) BETWEEN 1 AND 50),
    ADD COLUMN currency text NOT NULL DEFAULT 'credits' CHECK (length(currency) BETWEEN 1 AND 20),
    -- Used when a send has no `from`; an alphanumeric one must be an approved sender ID.
    ADD COLUMN default_sender text CHECK (length(default_sender) BETWEEN 3 AND 16),
    -- The reply to an inbound HELP.
    ADD COLUMN help_text text CHECK (length(help_text) BETWEEN 1 AND 918),
    -- After a rotation the previous callback secret still signs deliveries for 24 hours.
    ADD COLUMN previous_webhook_secret text,
    ADD COLUMN webhook_secret_rotated_at timestamptz,
    ADD CHECK ((previous_webhook_secret IS NULL) = (webhook_secret_rotated_at IS NULL));

CREATE TABLE sender_ids (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id  uuid NOT NULL REFERENCES accounts (id),
    sender_id   text NOT NULL CHECK (sender_id ~ '^([A-Za-z0-9 ._&-]{3,11}|\+?[0-9]{3,15})$'),
    purpose     text NOT NULL CHECK (length(purpose) BETWEEN 1 AND 500),
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    reason      text CHECK (length(reason) <= 500),
    created_at  timestamptz NOT NULL DEFAULT now(),
    decided_at  timestamptz,
    CHECK ((status = 'pending') = (decided_at IS NULL)),
    UNIQUE (account_id, sender_id)
);
CREATE INDEX sender_ids_pending ON sender_ids (created_at) WHERE status = 'pending';

-- Numbers that refused an account's messages (by API, or by texting a keyword such as STOP).
CREATE TABLE opt_outs (
    account_id  uuid NOT NULL REFERENCES accounts (id),
    phone       text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    source      text NOT NULL CHECK (source IN ('api', 'keyword')),
    keyword     text CHECK (keyword = upper(keyword)),
    inbound_id  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, phone),
    CHECK ((source = 'keyword') = (keyword IS NOT NULL))
);
CREATE INDEX opt_outs_recent ON opt_outs (account_id, created_at DESC, phone);

-- One-time codes: only a keyed hash of the code is stored; the code itself travels only to
-- the carrier.
CREATE TABLE otps (
    id           uuid PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts (id),
    to_number    text NOT NULL CHECK (to_number ~ '^\+[1-9][0-9]{6,14}$'),
    message_id   uuid NOT NULL,
    code_hash    bytea NOT NULL,
    expires_at   timestamptz NOT NULL,
    attempts     integer NOT NULL DEFAULT 0 CHECK (attempts BETWEEN 0 AND 5),
    verified_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX otps_by_number ON otps (account_id, to_number, created_at DESC);

-- Secrets the gateway makes for itself once and every process shares (e.g. the OTP hash key).
CREATE TABLE gateway_secrets (
    name        text PRIMARY KEY,
    value       bytea NOT NULL CHECK (length(value) >= 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE messages
    ADD COLUMN scheduled_at timestamptz,
    -- Not submitted by then: failed EXPIRED, refunded; also the submit_sm validity_period.
    ADD COLUMN expires_at timestamptz;
CREATE INDEX messages_due ON messages (scheduled_at) WHERE status = 'scheduled';

-- Search: each filter of GET /v1/messages walks its own index in page order.
CREATE INDEX messages_account_status ON messages (account_id, status, created_at DESC, id DESC);
CREATE INDEX messages_account_to ON messages (account_id, to_number, created_at DESC, id DESC);
CREATE INDEX messages_account_ref ON messages (account_id, client_ref, created_at DESC, id DESC)
    WHERE client_ref IS NOT NULL;
DROP INDEX messages_batch;
CREATE INDEX messages_batch ON messages (batch_id, created_at DESC, id DESC)
    WHERE batch_id IS NOT NULL;

DROP INDEX inbound_account_recent;
CREATE INDEX inbound_account_recent ON inbound_messages (account_id, received_at DESC, id DESC);
