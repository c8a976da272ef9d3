-- Username and password logins, for the provider dialects whose customers authenticate that way
-- (smsapi v1, vavasms). A login stands for one API key of its account: revoking, expiring or
-- rate-limiting that key does the same to the login. Only a scrypt hash of the password is kept.
CREATE TABLE account_logins (
    username       text PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9._@+-]{3,64}$'),
    account_id     uuid NOT NULL REFERENCES accounts (id),
    key_id         uuid NOT NULL UNIQUE REFERENCES api_keys (id),
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_logins_account ON account_logins (account_id);
