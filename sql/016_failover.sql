-- Routes with failover: a prefix of a channel may name several connectors, tried by priority
-- (lower first) and shared by weight within a priority. A connector can be disabled by the
-- operator, and is skipped while it is out: no bind up for its failover_after seconds, or a
-- refusal that is the connector's (not the message's). Routing reads this on every refresh.
ALTER TABLE connectors
    ADD COLUMN enabled boolean NOT NULL DEFAULT true,
    ADD COLUMN failover_after integer NOT NULL DEFAULT 30 CHECK (failover_after BETWEEN 1 AND 86400);

ALTER TABLE routes
    ADD COLUMN priority integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 1000),
    ADD COLUMN weight integer NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 1000),
    DROP CONSTRAINT routes_prefix_channel_key,
    ADD CONSTRAINT routes_prefix_channel_connector_key UNIQUE (prefix, channel, connector);

CREATE TABLE connector_outages (
    connector  text PRIMARY KEY REFERENCES connectors (name) ON DELETE CASCADE,
    since      timestamptz NOT NULL DEFAULT now(),
    reason     text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500)
);
