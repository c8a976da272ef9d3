-- Idempotency-Key on POST /v1/messages: a retried request gets the first answer back.

CREATE TABLE idempotency_keys (
    account_id    uuid NOT NULL REFERENCES accounts (id),
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  bytea NOT NULL,
    status        integer,
    response      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key),
    CHECK ((status IS NULL) = (response IS NULL))
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
