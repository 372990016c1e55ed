-- The fuzz configuration, loaded after tests/fixtures/directory.sql (mailboxes, companies,
-- contacts, resources, tags, tickets, a project with tasks): parsing rules with capture groups,
-- sender exclusions, workflow rules with regular expressions and notifications, every template
-- switched on, and settings that turn on the optional paths (trusted networks, duplicate
-- criteria, failure notices).

INSERT INTO settings (key, value) VALUES
    ('trusted_networks', '10.0.0.0/8, 2001:db8::/32'),
    ('duplicate_criteria', 'sender_subject, alert_id, external_id'),
    ('failure_notify', 'helpdesk-admin@msp.example'),
    ('auto_mail_queue', 'Triage'),
    ('max_tags', '5');

INSERT INTO parsing_rules (position, mailbox_id, field, pattern, set_queue, set_priority, set_status,
                           set_issue_type, set_company, add_tag, ignore_message, stop) VALUES
    (1, NULL, 'header:X-Spam-Flag', '^yes$', NULL, NULL, NULL, NULL, NULL, NULL, TRUE, TRUE),
    (10, NULL, 'subject', '^\[(triage|monitoring alert)\]', '$1', 'Critical', NULL, NULL, NULL, 'Urgent', FALSE, FALSE),
    (20, 1, 'from', '@partner\.example$', NULL, NULL, 'Waiting Customer', 'Hardware', 'Acme GmbH', NULL, FALSE, TRUE),
    (30, NULL, 'body', '(?m)^customer:\s*(\S+ \S+)$', NULL, NULL, NULL, NULL, '$1', NULL, FALSE, FALSE),
    (40, 2, 'subject', '(down|critical)', NULL, 'High', NULL, 'Network', NULL, 'Monitoring', FALSE, FALSE),
    (50, NULL, 'header:X-Priority', '^1', NULL, 'Critical', NULL, NULL, NULL, '$0', FALSE, FALSE);

INSERT INTO excluded_senders (pattern, mailbox_id, action, note) VALUES
    ('@newsletter.example', NULL, 'ignore', 'marketing mail'),
    ('spammer@bad.example', NULL, 'reject', 'known spammer'),
    ('@noise.example', 2, 'discard', 'noisy monitor');

UPDATE notification_templates SET active = TRUE;

INSERT INTO queue_members (queue_id, resource_id) VALUES (1, 1);
INSERT INTO workflow_rules (position, name, on_events, if_company, if_subject, if_body, if_auto,
                            set_priority, assign, due_in_hours, add_tag, notify_template,
                            notify_roles, notify_addresses) VALUES
    (10, 'Example Corp in turn', 'ticket_created', 'Example Corp', NULL, NULL, NULL,
     NULL, 'round_robin', 8, NULL, NULL, NULL, NULL),
    (20, 'Urgent words', 'ticket_created,note_added', NULL, '(?i)urgent|asap', NULL, FALSE,
     'Critical', NULL, NULL, 'Urgent', 'acknowledgement', 'contact,additional_contacts,assigned,addresses',
     'oncall@msp.example'),
    (30, 'Time logged', 'time_entry_added,status_changed', NULL, NULL, '(?s).', NULL,
     NULL, 'tina@msp.example', NULL, NULL, 'acknowledgement', 'queue_members', NULL);
