-- Example help-desk configuration for ticketmilter.
--
-- Load it into the configured database (migrations are applied first) with:
--     ticketmilter load conf/example.sql
-- It uses only portable SQL and runs on SQLite and PostgreSQL alike. Names, not ids, tie the
-- rows together, so it can be loaded into a database that already holds other rows, and every
-- statement skips rows that exist already: loading it twice changes nothing.

-- Customers. Mail from an unknown address at example.com is attributed to Example Corp by its
-- web domain; public domains (gmail.com …, table public_domains) never are.
INSERT INTO companies (name, web_domain, active, created_at)
    SELECT 'Example Corp', 'example.com', TRUE, CURRENT_TIMESTAMP
    WHERE NOT EXISTS (SELECT 1 FROM companies WHERE name = 'Example Corp');
INSERT INTO companies (name, web_domain, active, created_at)
    SELECT 'Acme GmbH', 'acme.example', TRUE, CURRENT_TIMESTAMP
    WHERE NOT EXISTS (SELECT 1 FROM companies WHERE name = 'Acme GmbH');
INSERT INTO companies (name, web_domain, active, created_at)
    SELECT 'Unassigned', NULL, TRUE, CURRENT_TIMESTAMP
    WHERE NOT EXISTS (SELECT 1 FROM companies WHERE name = 'Unassigned');

-- Contacts: up to three addresses each.
INSERT INTO contacts (company_id, name, email1, email2, active, created_at)
    SELECT id, 'Alice Example', 'alice@example.com', 'alice.private@gmail.com', TRUE, CURRENT_TIMESTAMP
    FROM companies WHERE name = 'Example Corp'
      AND NOT EXISTS (SELECT 1 FROM contacts WHERE email1 = 'alice@example.com');
INSERT INTO contacts (company_id, name, email1, active, created_at)
    SELECT id, 'Bernd Acme', 'bernd@acme.example', TRUE, CURRENT_TIMESTAMP
    FROM companies WHERE name = 'Acme GmbH'
      AND NOT EXISTS (SELECT 1 FROM contacts WHERE email1 = 'bernd@acme.example');

-- Staff (resources).
INSERT INTO resources (name, email, active, created_at)
    SELECT 'Tina Tech', 'tina@msp.example', TRUE, CURRENT_TIMESTAMP
    WHERE NOT EXISTS (SELECT 1 FROM resources WHERE email = 'tina@msp.example');

-- Tags with aliases. Phrases are matched as whole words, case-insensitively, in the title and
-- description of new tickets; phrases of two characters or fewer never match.
INSERT INTO tags (label, active) SELECT 'Printer', TRUE WHERE NOT EXISTS (SELECT 1 FROM tags WHERE label = 'Printer');
INSERT INTO tags (label, active) SELECT 'Network', TRUE WHERE NOT EXISTS (SELECT 1 FROM tags WHERE label = 'Network');
INSERT INTO tags (label, active) SELECT 'Password', TRUE WHERE NOT EXISTS (SELECT 1 FROM tags WHERE label = 'Password');
INSERT INTO tags (label, active) SELECT 'Backup', TRUE WHERE NOT EXISTS (SELECT 1 FROM tags WHERE label = 'Backup');
INSERT INTO tags (label, active) SELECT 'Monitoring', TRUE WHERE NOT EXISTS (SELECT 1 FROM tags WHERE label = 'Monitoring');
INSERT INTO tag_aliases (tag_id, alias) SELECT id, 'Drucker' FROM tags WHERE label = 'Printer'
    AND NOT EXISTS (SELECT 1 FROM tag_aliases a WHERE a.tag_id = tags.id AND a.alias = 'Drucker');
INSERT INTO tag_aliases (tag_id, alias) SELECT id, 'printing' FROM tags WHERE label = 'Printer'
    AND NOT EXISTS (SELECT 1 FROM tag_aliases a WHERE a.tag_id = tags.id AND a.alias = 'printing');
INSERT INTO tag_aliases (tag_id, alias) SELECT id, 'Wi-Fi' FROM tags WHERE label = 'Network'
    AND NOT EXISTS (SELECT 1 FROM tag_aliases a WHERE a.tag_id = tags.id AND a.alias = 'Wi-Fi');
INSERT INTO tag_aliases (tag_id, alias) SELECT id, 'WLAN' FROM tags WHERE label = 'Network'
    AND NOT EXISTS (SELECT 1 FROM tag_aliases a WHERE a.tag_id = tags.id AND a.alias = 'WLAN');
INSERT INTO tag_aliases (tag_id, alias) SELECT id, 'VPN' FROM tags WHERE label = 'Network'
    AND NOT EXISTS (SELECT 1 FROM tag_aliases a WHERE a.tag_id = tags.id AND a.alias = 'VPN');
INSERT INTO tag_aliases (tag_id, alias) SELECT id, 'Kennwort' FROM tags WHERE label = 'Password'
    AND NOT EXISTS (SELECT 1 FROM tag_aliases a WHERE a.tag_id = tags.id AND a.alias = 'Kennwort');
INSERT INTO tag_aliases (tag_id, alias) SELECT id, 'Passwort' FROM tags WHERE label = 'Password'
    AND NOT EXISTS (SELECT 1 FROM tag_aliases a WHERE a.tag_id = tags.id AND a.alias = 'Passwort');

-- Mailboxes. support@ takes mail from anyone (unknown senders go to "Unassigned");
-- alerts@ takes only known senders or domains, files tickets in the Monitoring Alert queue with
-- priority High and always tags them "Monitoring".
INSERT INTO mailboxes (address, name, active, note_visibility, unknown_sender,
                       fallback_company_id, created_at)
    SELECT 'support@msp.example', 'Support', TRUE, 'all', 'fallback', id, CURRENT_TIMESTAMP
    FROM companies WHERE name = 'Unassigned'
      AND NOT EXISTS (SELECT 1 FROM mailboxes WHERE address = 'support@msp.example');
INSERT INTO mailboxes (address, name, active, note_visibility, unknown_sender,
                       queue_id, priority_id, source_id, created_at)
    SELECT 'alerts@msp.example', 'Monitoring alerts', TRUE, 'internal', 'reject',
           q.id, p.id, s.id, CURRENT_TIMESTAMP
    FROM queues q, priorities p, sources s
    WHERE q.name = 'Monitoring Alert' AND p.name = 'High' AND s.name = 'Monitoring Alert'
      AND NOT EXISTS (SELECT 1 FROM mailboxes WHERE address = 'alerts@msp.example');
INSERT INTO mailbox_tags (mailbox_id, tag_id)
    SELECT m.id, t.id FROM mailboxes m, tags t
    WHERE m.address = 'alerts@msp.example' AND t.label = 'Monitoring'
      AND NOT EXISTS (SELECT 1 FROM mailbox_tags x WHERE x.mailbox_id = m.id AND x.tag_id = t.id);

-- Settings (all optional; `ticketmilter setting list` shows every key with its default).
INSERT INTO settings (key, value) SELECT 'max_tags', '30'
    WHERE NOT EXISTS (SELECT 1 FROM settings WHERE key = 'max_tags');

-- Commands by mail (#T= time, #R= role, #S= status on the first line) are carried out only for
-- resources whose message is authenticated: SMTP AUTH, a client in trusted_networks, or an
-- Authentication-Results header from one of trusted_authserv_ids (your MX's OpenDKIM/OpenDMARC
-- or rspamd) reporting dmarc=pass, or dkim=pass for the sender's domain.
INSERT INTO settings (key, value) SELECT 'trusted_authserv_ids', 'mx.msp.example'
    WHERE NOT EXISTS (SELECT 1 FROM settings WHERE key = 'trusted_authserv_ids');

-- Parsing rules: ordered regular expressions over subject, body, from or header:Name.
-- Monitoring mail "[PRTG] Sensor down on srv01" goes to the Monitoring Alert queue as High
-- and is tagged; mail flagged as spam by the MX is left unconverted.
INSERT INTO parsing_rules (position, field, pattern, set_queue, set_priority, add_tag, ignore_message, stop, active)
    SELECT 10, 'subject', '^\[PRTG\]', 'Monitoring Alert', 'High', 'Monitoring', FALSE, FALSE, TRUE
    WHERE NOT EXISTS (SELECT 1 FROM parsing_rules WHERE position = 10 AND field = 'subject');
INSERT INTO parsing_rules (position, field, pattern, ignore_message, stop, active)
    SELECT 1, 'header:X-Spam-Flag', '^yes$', TRUE, TRUE, TRUE
    WHERE NOT EXISTS (SELECT 1 FROM parsing_rules WHERE position = 1 AND field = 'header:X-Spam-Flag');

-- Senders whose mail is never converted: an address or a whole domain (@example.org).
INSERT INTO excluded_senders (pattern, action, note)
    SELECT '@newsletter.example', 'ignore', 'marketing mail'
    WHERE NOT EXISTS (SELECT 1 FROM excluded_senders WHERE pattern = '@newsletter.example');

-- A project with a task: mail with P…/K… numbers in the subject becomes project/task notes
-- (and time entries on the task from staff). Projects and tasks get numbers when added with
-- `ticketmilter project add` / `task add`; here they are numbered by hand.
INSERT INTO projects (number, name, company_id, status_id, created_at, updated_at)
    SELECT 'P20260101.0001', 'Office move', c.id, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP
    FROM companies c WHERE c.name = 'Example Corp'
      AND NOT EXISTS (SELECT 1 FROM projects WHERE number = 'P20260101.0001');
INSERT INTO tasks (number, project_id, title, description, status_id, created_at, updated_at)
    SELECT 'K20260101.0001', p.id, 'Move the printers', '', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP
    FROM projects p WHERE p.number = 'P20260101.0001'
      AND NOT EXISTS (SELECT 1 FROM tasks WHERE number = 'K20260101.0001');

-- Notifications: acknowledge new tickets (the template is installed switched off), and tell
-- the help-desk administrator about every message that could not be converted.
UPDATE notification_templates SET active = TRUE WHERE name = 'acknowledgement';
INSERT INTO settings (key, value) SELECT 'failure_notify', 'helpdesk-admin@msp.example'
    WHERE NOT EXISTS (SELECT 1 FROM settings WHERE key = 'failure_notify');

-- Workflow: Tina works the Service Desk queue; tickets of Example Corp go to its members in
-- turn (round robin) with a due date eight hours ahead.
INSERT INTO queue_members (queue_id, resource_id)
    SELECT q.id, r.id FROM queues q, resources r
    WHERE q.name = 'Service Desk' AND r.email = 'tina@msp.example'
      AND NOT EXISTS (SELECT 1 FROM queue_members m WHERE m.queue_id = q.id AND m.resource_id = r.id);
INSERT INTO workflow_rules (position, name, on_events, if_company, assign, due_in_hours)
    SELECT 10, 'Example Corp: assign in turn, due in 8 hours', 'ticket_created', 'Example Corp', 'round_robin', 8
    WHERE NOT EXISTS (SELECT 1 FROM workflow_rules WHERE name = 'Example Corp: assign in turn, due in 8 hours');
