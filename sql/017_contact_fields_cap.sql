-- A contact has at most 50 custom fields (broker.contacts.MAX_FIELDS). Each request is checked
-- alone, but an import merges a row's fields into the stored ones, so the stored object is
-- what must hold the cap, whichever statement writes it.

-- The number of keys of an object (its values, one per key): one expression without a
-- subquery, so that it may stand in a CHECK constraint and is inlined where a query uses it.
-- About 1 µs a row, a fifth of jsonb_object_keys in a subquery or of '$.keyvalue()'.
CREATE OR REPLACE FUNCTION contact_field_count(fields jsonb) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN jsonb_array_length(jsonb_path_query_array(fields, '$.*'));

-- NOT VALID: contacts that went past 50 before this migration are kept as they are (a
-- customer's data is not cut here), while every row inserted or updated from now on is
-- checked; such a contact changes again once `fields` is replaced with at most 50 (PATCH).
-- When none is left (SELECT id FROM contacts WHERE contact_field_count(fields) > 50),
-- `ALTER TABLE contacts VALIDATE CONSTRAINT contacts_fields_cap` marks it valid.
ALTER TABLE contacts
    ADD CONSTRAINT contacts_fields_cap CHECK (contact_field_count(fields) <= 50) NOT VALID;
