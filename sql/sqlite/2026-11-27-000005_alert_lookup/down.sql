DROP INDEX tickets_alert;
DROP INDEX tickets_external;
CREATE INDEX tickets_alert ON tickets (company_id, alert_id);
CREATE INDEX tickets_external ON tickets (company_id, external_id);
