-- Open tickets are looked up by mailbox and alert id (or external id) when a structured alert
-- arrives. The first indexes led with the company, which that lookup does not know, so it read
-- every ticket. These lead with the mailbox and hold only tickets that have such an id: other
-- tickets write no entry at all.
DROP INDEX tickets_alert;
DROP INDEX tickets_external;
CREATE INDEX tickets_alert ON tickets (mailbox_id, alert_id) WHERE alert_id IS NOT NULL;
CREATE INDEX tickets_external ON tickets (mailbox_id, external_id) WHERE external_id IS NOT NULL;
