-- The audit log is append-only in the database itself, not only in the application:
-- any UPDATE or DELETE of agencies_auditevent raises, whoever sends it (ORM, raw SQL, psql).
-- Idempotent: installed after every migrate (agencies/apps.py) and by the migration that adds it.
-- TRUNCATE is deliberately not guarded: test databases are flushed with it, and a role that may
-- TRUNCATE may also drop the trigger. In production, also revoke UPDATE, DELETE, TRUNCATE on this
-- table from the application's role (docs/security.md).
CREATE OR REPLACE FUNCTION agencies_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS agencies_auditevent_append_only ON agencies_auditevent;
CREATE TRIGGER agencies_auditevent_append_only
    BEFORE UPDATE OR DELETE ON agencies_auditevent
    FOR EACH ROW EXECUTE FUNCTION agencies_auditevent_append_only();
