-- Every commit that changes a panel record is announced on one channel, so a panel process
-- that keeps answers in memory learns of the other processes' writes (hosting_db::ChangeFeed).
-- Statement-level triggers: one notification per statement at most, and PostgreSQL folds
-- identical notifications of one transaction into one, delivered at commit.
CREATE FUNCTION hosting_announce_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hosting_store_changes', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER tenants_announce AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION hosting_announce_change();
CREATE TRIGGER users_announce AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION hosting_announce_change();
CREATE TRIGGER nodes_announce AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON nodes
    FOR EACH STATEMENT EXECUTE FUNCTION hosting_announce_change();
CREATE TRIGGER websites_announce AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON websites
    FOR EACH STATEMENT EXECUTE FUNCTION hosting_announce_change();
CREATE TRIGGER website_domains_announce AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON website_domains
    FOR EACH STATEMENT EXECUTE FUNCTION hosting_announce_change();
CREATE TRIGGER website_configs_announce AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON website_configs
    FOR EACH STATEMENT EXECUTE FUNCTION hosting_announce_change();
CREATE TRIGGER alert_rules_announce AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON alert_rules
    FOR EACH STATEMENT EXECUTE FUNCTION hosting_announce_change();
CREATE TRIGGER audit_log_announce AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION hosting_announce_change();
