-- +goose Up
-- Values a signed Clerk event can carry that PostgreSQL refuses.

-- users.email is indexed by a hash of lower(email): a btree index row holds
-- at most about 2.7 kB, so one user with a longer email (Clerk does not
-- bound it) would be refused (54000) and kept out of users for good. A
-- hash index stores 4 bytes per row whatever the value's length and serves
-- the same lookups (WHERE lower(email) = lower($1)). After a
-- `webhookd replay users` the index has a generated name, so it is found by
-- its definition.
-- +goose StatementBegin
DO $$
DECLARE
    idx regclass;
BEGIN
    FOR idx IN SELECT indexrelid::regclass FROM pg_index
               WHERE indrelid = 'users'::regclass AND pg_get_indexdef(indexrelid) LIKE '%lower(email)%'
    LOOP
        EXECUTE 'DROP INDEX ' || idx;
    END LOOP;
END
$$;
-- +goose StatementEnd
CREATE INDEX users_email_idx ON users USING hash (lower(email)) WHERE deleted_at IS NULL;

-- ledger_payload_json(payload) reads a ledger payload as jsonb, for every
-- payload the ledger holds. convert_from(payload, 'UTF8')::jsonb fails on a
-- whole query as soon as one payload holds what jsonb refuses but JSON and
-- Clerk's signature allow: a \u0000 escape (22P05), a lone surrogate escape
-- such as \ud800 (22P02), or bytes that are not UTF-8 (22021). Here those
-- become U+FFFD, the rule the read models follow (webhookd reads such
-- strings the same way); the raw bytes stay in payload. NULL only for a
-- payload that is not JSON at all (webhookd never appends one).
-- +goose StatementBegin
CREATE FUNCTION ledger_payload_json(payload bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    t text;
BEGIN
    BEGIN
        RETURN convert_from(payload, 'UTF8')::jsonb;
    EXCEPTION WHEN data_exception THEN
        NULL; -- not plain: repaired below
    END;
    BEGIN
        t := convert_from(payload, 'UTF8');
    EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
        -- Invalid UTF-8: keep every valid sequence, each invalid byte becomes U+FFFD.
        SELECT string_agg(CASE WHEN m[1] IS NOT NULL THEN convert_from(convert_to(m[1], 'LATIN1'), 'UTF8') ELSE U&'\FFFD' END, '' ORDER BY n)
        INTO t
        FROM regexp_matches(convert_from(payload, 'LATIN1'),
            '([\x01-\x7f]+|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})|[\x80-\xff]',
            'g') WITH ORDINALITY AS r(m, n);
    END;
    -- \u0000 and lone surrogate escapes, which jsonb refuses, become \ufffd.
    SELECT string_agg(CASE WHEN length(m[1]) = 6 AND m[1] ~* '^\\u(0000|d[89a-f])' THEN '\ufffd' ELSE m[1] END, '' ORDER BY n)
    INTO t
    FROM regexp_matches(t, '(\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\.|[^\\]+)', 'g') WITH ORDINALITY AS r(m, n);
    RETURN t::jsonb;
EXCEPTION WHEN data_exception OR program_limit_exceeded THEN
    RETURN NULL;
END
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION ledger_payload_json(bytea) IS 'A ledger payload as jsonb, for any payload: \u0000, lone surrogate escapes and invalid UTF-8 (which jsonb refuses) read as U+FFFD. Use instead of convert_from(payload, ''UTF8'')::jsonb.';

-- +goose Down
DROP FUNCTION ledger_payload_json(bytea);
DROP INDEX users_email_idx;
CREATE INDEX users_email_idx ON users (lower(email)) WHERE deleted_at IS NULL;
