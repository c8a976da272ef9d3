-- A connector's binds as numbered slots that submit processes lease: however many processes run,
-- on however many machines, a connector never has more binds open than its `binds`, and its TPS
-- is shared by the holders of its slots in proportion to the slots each holds. A process
-- renews its leases every few seconds; a dead one's run out and the others take them.
-- `gateway` is the QUEUE_PREFIX: processes of one gateway share slots (one gateway per prefix).
CREATE TABLE bind_leases (
    gateway     text NOT NULL,
    connector   text NOT NULL REFERENCES connectors (name) ON DELETE CASCADE,
    slot        integer NOT NULL CHECK (slot >= 0),
    holder      uuid NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (gateway, connector, slot)
);
CREATE INDEX bind_leases_holder ON bind_leases (holder);

-- The submit processes alive (a heartbeat each round): slots are shared out among them.
CREATE TABLE submit_holders (
    holder   uuid PRIMARY KEY,
    gateway  text NOT NULL,
    seen_at  timestamptz NOT NULL DEFAULT now()
);
