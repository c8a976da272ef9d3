-- Messages, their parts on the wire, and the history of their status.

-- Lifecycle order; a message only moves forward, and a final state is never left.
CREATE FUNCTION status_rank(s text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE s
        WHEN 'scheduled' THEN 0 WHEN 'queued' THEN 1 WHEN 'sending' THEN 2 WHEN 'sent' THEN 3
        WHEN 'delivered' THEN 4 WHEN 'undelivered' THEN 4 WHEN 'failed' THEN 4 WHEN 'canceled' THEN 4
    END
$$;

CREATE TABLE batches (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id),
    total       integer NOT NULL CHECK (total > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE messages (
    id            uuid PRIMARY KEY,
    account_id    uuid NOT NULL REFERENCES accounts (id),
    batch_id      uuid REFERENCES batches (id),
    to_number     text NOT NULL CHECK (to_number ~ '^\+[1-9][0-9]{6,14}$'),
    sender        text,
    body          text NOT NULL CHECK (length(body) > 0),
    encoding      text NOT NULL CHECK (encoding IN ('GSM7', 'UCS2')),
    segments      integer NOT NULL CHECK (segments > 0),
    status        text NOT NULL CHECK (status_rank(status) IS NOT NULL),
    connector     text REFERENCES connectors (name),
    price         numeric(12, 4) NOT NULL DEFAULT 0 CHECK (price >= 0),
    cost          numeric(18, 4) NOT NULL DEFAULT 0 CHECK (cost >= 0),
    client_ref    text CHECK (length(client_ref) <= 200),
    callback_url  text CHECK (length(callback_url) <= 2000),
    error_code    text,
    error_text    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    done_at       timestamptz
);
CREATE INDEX messages_account_recent ON messages (account_id, created_at DESC, id DESC);
CREATE INDEX messages_batch ON messages (batch_id) WHERE batch_id IS NOT NULL;

CREATE FUNCTION messages_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status <> OLD.status AND status_rank(NEW.status) <= status_rank(OLD.status) THEN
        RAISE EXCEPTION 'message % cannot move from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER messages_forward_only BEFORE UPDATE OF status ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_forward_only();

CREATE TABLE message_parts (
    message_id      uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    seq             integer NOT NULL CHECK (seq > 0),
    connector       text NOT NULL REFERENCES connectors (name),
    carrier_id      text,
    status          text NOT NULL CHECK (status IN ('sent', 'delivered', 'undelivered', 'failed')),
    command_status  integer,
    error_code      text,
    submitted_at    timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz,
    PRIMARY KEY (message_id, seq),
    CHECK ((status = 'failed') OR carrier_id IS NOT NULL)
);
CREATE INDEX message_parts_carrier ON message_parts (connector, carrier_id);

CREATE TABLE message_events (
    id          bigserial PRIMARY KEY,
    message_id  uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    status      text NOT NULL,
    detail      text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_events_message ON message_events (message_id, id);

-- Receipts that arrived before their submit_sm_resp was recorded; matched by a sweep.
CREATE TABLE pending_receipts (
    connector    text NOT NULL,
    carrier_id   text NOT NULL,
    state        text NOT NULL,
    error        text,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connector, carrier_id, state)
);

CREATE TABLE inbound_messages (
    id           uuid PRIMARY KEY,
    account_id   uuid REFERENCES accounts (id),
    connector    text NOT NULL,
    from_number  text NOT NULL,
    to_number    text NOT NULL,
    body         text NOT NULL,
    keyword      text NOT NULL DEFAULT '',
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbound_account_recent ON inbound_messages (account_id, received_at DESC);

-- Parts of a concatenated inbound message waiting for their siblings.
CREATE TABLE inbound_fragments (
    connector    text NOT NULL,
    from_number  text NOT NULL,
    to_number    text NOT NULL,
    reference    integer NOT NULL,
    total        integer NOT NULL CHECK (total BETWEEN 2 AND 255),
    seq          integer NOT NULL CHECK (seq BETWEEN 1 AND 255),
    body         text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connector, from_number, to_number, reference, total, seq)
);
