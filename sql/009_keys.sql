-- API keys over HTTP: the secrets a regenerate replaced, so that an old secret is answered
-- 403 API_KEY_DISABLED (a key that existed and was retired) rather than 401 (never a key).
CREATE TABLE api_key_retired_hashes (
    key_hash    bytea PRIMARY KEY,
    key_id      uuid NOT NULL REFERENCES api_keys (id),
    retired_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_key_retired_hashes_key ON api_key_retired_hashes (key_id);

-- GET /v1/keys: an account's keys newest first, one index walk per page.
DROP INDEX api_keys_account;
CREATE INDEX api_keys_account ON api_keys (account_id, created_at DESC, id DESC);
