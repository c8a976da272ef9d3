-- The body a webhook endpoint receives: 'standard' (the gateway's signed JSON events) or a
-- provider dialect's own notification ('vavasms': a form POST per inbound SMS, which is all that
-- provider's notification URL carries, so such an endpoint subscribes to message.inbound only).
ALTER TABLE webhooks
    ADD COLUMN format text NOT NULL DEFAULT 'standard' CHECK (format IN ('standard', 'vavasms')),
    ADD CONSTRAINT webhooks_format_events
        CHECK (format = 'standard' OR events = ARRAY['message.inbound']);
