-- Customer webhook endpoints and the log of every delivery attempt.

CREATE TABLE webhooks (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id  uuid NOT NULL REFERENCES accounts (id),
    url         text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2000),
    events      text[] NOT NULL CHECK (cardinality(events) > 0
                    AND events <@ ARRAY['message.status', 'message.inbound']),
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_account ON webhooks (account_id);

CREATE TABLE webhook_attempts (
    id           bigserial PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts (id),
    webhook_id   uuid REFERENCES webhooks (id) ON DELETE SET NULL,
    event_id     text NOT NULL,
    event_type   text NOT NULL,
    url          text NOT NULL,
    attempt      integer NOT NULL CHECK (attempt > 0),
    status_code  integer,
    error        text,
    duration_ms  integer NOT NULL,
    final        boolean NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_webhook ON webhook_attempts (webhook_id, id DESC);
CREATE INDEX webhook_attempts_account ON webhook_attempts (account_id, id DESC);
