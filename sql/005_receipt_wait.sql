-- Messages still waiting for a delivery receipt, oldest first, for the no-receipt sweep.
CREATE INDEX messages_awaiting_receipt ON messages (sent_at) WHERE status = 'sent';
