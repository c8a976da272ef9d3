-- The WhatsApp channel: connectors that send through the WhatsApp Business Cloud API beside the
-- SMPP ones, routes per channel, and the channel each message went out on.

ALTER TABLE connectors
    ADD COLUMN kind text NOT NULL DEFAULT 'smpp' CHECK (kind IN ('smpp', 'whatsapp')),
    -- The Cloud API's base URL up to the version, e.g. https://graph.facebook.com/v21.0
    ADD COLUMN wa_url text CHECK (wa_url ~ '^https?://[^[:space:]]+$' AND length(wa_url) <= 500),
    ADD COLUMN wa_phone_number_id text CHECK (wa_phone_number_id ~ '^[0-9]{1,30}$'),
    ADD COLUMN wa_token text CHECK (length(wa_token) BETWEEN 1 AND 1000),
    -- Signs the status and inbound webhooks (X-Hub-Signature-256).
    ADD COLUMN wa_app_secret text CHECK (length(wa_app_secret) BETWEEN 1 AND 200),
    -- What Meta's GET verification of the webhook URL must present (hub.verify_token).
    ADD COLUMN wa_verify_token text CHECK (length(wa_verify_token) BETWEEN 1 AND 200),
    ALTER COLUMN host DROP NOT NULL,
    ALTER COLUMN port DROP NOT NULL,
    ALTER COLUMN system_id DROP NOT NULL,
    ALTER COLUMN password DROP NOT NULL;

-- Each kind has every setting it needs.
ALTER TABLE connectors ADD CONSTRAINT connectors_kind_settings CHECK (
    CASE kind
        WHEN 'smpp' THEN host IS NOT NULL AND port IS NOT NULL AND system_id IS NOT NULL
                         AND password IS NOT NULL
        ELSE wa_url IS NOT NULL AND wa_phone_number_id IS NOT NULL AND wa_token IS NOT NULL
             AND wa_app_secret IS NOT NULL AND wa_verify_token IS NOT NULL
    END
);

-- A WhatsApp connector's receipts (status webhooks) are matched within its phone number.
ALTER TABLE connectors DROP COLUMN scope;
ALTER TABLE connectors ADD COLUMN scope text GENERATED ALWAYS AS (
    CASE kind
        WHEN 'whatsapp' THEN 'whatsapp/' || wa_phone_number_id
        ELSE host || ':' || port::text || '/' || system_id
    END
) STORED;

-- A route is for one channel: the same prefix may go to an SMPP carrier and to WhatsApp.
ALTER TABLE routes
    ADD COLUMN channel text NOT NULL DEFAULT 'sms' CHECK (channel IN ('sms', 'whatsapp')),
    DROP CONSTRAINT routes_prefix_key,
    ADD CONSTRAINT routes_prefix_channel_key UNIQUE (prefix, channel);

ALTER TABLE messages
    ADD COLUMN channel text NOT NULL DEFAULT 'sms' CHECK (channel IN ('sms', 'whatsapp'));
