-- Audiences: contacts, groups of them, message templates, and sends to whole groups, which a
-- worker expands into messages in the background.

CREATE TABLE contacts (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id  uuid NOT NULL REFERENCES accounts (id),
    phone       text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    first_name  text CHECK (length(first_name) BETWEEN 1 AND 100),
    last_name   text CHECK (length(last_name) BETWEEN 1 AND 100),
    email       text CHECK (length(email) BETWEEN 3 AND 254),
    -- Custom values by name ({{key}} in a template); strings only.
    fields      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(fields) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- One contact per number per account: the unique key of imports and of personalization.
    UNIQUE (account_id, phone),
    -- The target of group_members' foreign key, which keeps a group's members in its account.
    UNIQUE (account_id, id)
);
CREATE INDEX contacts_recent ON contacts (account_id, created_at DESC, id DESC);
-- `q`: a prefix of the first or the last name, any case.
CREATE INDEX contacts_first_name ON contacts (account_id, lower(first_name) text_pattern_ops);
CREATE INDEX contacts_last_name ON contacts (account_id, lower(last_name) text_pattern_ops);

CREATE TABLE contact_groups (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id  uuid NOT NULL REFERENCES accounts (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, name),
    UNIQUE (account_id, id)
);
CREATE INDEX contact_groups_recent ON contact_groups (account_id, created_at DESC, id DESC);

-- A contact and a group of another account can never be joined: both keys carry the account.
-- Deleting a group or a contact removes its memberships only.
CREATE TABLE group_members (
    account_id  uuid NOT NULL,
    group_id    uuid NOT NULL,
    contact_id  uuid NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, contact_id),
    FOREIGN KEY (account_id, group_id) REFERENCES contact_groups (account_id, id) ON DELETE CASCADE,
    FOREIGN KEY (account_id, contact_id) REFERENCES contacts (account_id, id) ON DELETE CASCADE
);
CREATE INDEX group_members_contact ON group_members (contact_id);

CREATE TABLE templates (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id  uuid NOT NULL REFERENCES accounts (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 10000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, name)
);
CREATE INDEX templates_recent ON templates (account_id, created_at DESC, id DESC);

-- A send to groups, accepted at once and expanded into messages by the expand worker, a chunk
-- at a time in phone order. `position` is the last phone published; a worker that dies leaves
-- its lease to run out, and the next one resumes from `position` (message ids derive from the
-- batch and the phone, so a chunk published twice is charged and sent once).
CREATE TABLE batch_expansions (
    batch_id     uuid PRIMARY KEY REFERENCES batches (id),
    account_id   uuid NOT NULL REFERENCES accounts (id),
    -- The send as accepted (its text or template body, variables, sender, options).
    send         jsonb NOT NULL,
    group_ids    uuid[] NOT NULL CHECK (cardinality(group_ids) > 0),
    -- Numbers given in `to` besides the groups: expanded first.
    numbers      text[] NOT NULL DEFAULT '{}',
    position     text,
    expanded     integer NOT NULL DEFAULT 0 CHECK (expanded >= 0),
    lease_until  timestamptz NOT NULL DEFAULT '-infinity',
    -- The worker holding the lease: one whose lease was taken over can no longer advance it.
    lease_owner  uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    done_at      timestamptz
);
CREATE INDEX batch_expansions_open ON batch_expansions (lease_until) WHERE done_at IS NULL;
