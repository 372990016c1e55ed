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
