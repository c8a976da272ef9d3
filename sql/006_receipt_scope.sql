-- Receipts are matched within a carrier account, not a connector: two connectors bound to the
-- same account (host, port, system_id) may each receive the other's receipts.

ALTER TABLE connectors
    ADD COLUMN scope text GENERATED ALWAYS AS (host || ':' || port::text || '/' || system_id) STORED;

ALTER TABLE message_parts ADD COLUMN scope text;

UPDATE message_parts p SET scope = c.scope FROM connectors c WHERE c.name = p.connector;

ALTER TABLE message_parts ALTER COLUMN scope SET NOT NULL;

CREATE FUNCTION message_parts_scope() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT scope INTO NEW.scope FROM connectors WHERE name = NEW.connector;
    RETURN NEW;
END
$$;
CREATE TRIGGER message_parts_scope BEFORE INSERT ON message_parts
    FOR EACH ROW EXECUTE FUNCTION message_parts_scope();

DROP INDEX message_parts_carrier;
CREATE INDEX message_parts_scope_carrier ON message_parts (scope, carrier_id);
