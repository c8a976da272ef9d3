-- A scheduled message was routed and charged when it was accepted: it always has a connector
-- (the scheduler hands it to that connector's queue when it is due).
ALTER TABLE messages
    ADD CONSTRAINT messages_scheduled_routed CHECK (status <> 'scheduled' OR connector IS NOT NULL);
