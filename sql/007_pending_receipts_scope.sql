-- Parked receipts are keyed by carrier account (scope), like the parts they wait for.
ALTER TABLE pending_receipts RENAME COLUMN connector TO scope;
UPDATE pending_receipts pr SET scope = c.scope FROM connectors c WHERE c.name = pr.scope;
