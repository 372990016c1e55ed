-- ticketmilter core schema (SQLite). The PostgreSQL tree mirrors it table for table.
-- Times are UTC, stored as diesel Timestamps ('YYYY-MM-DD HH:MM:SS[.ffffff]').
-- Addresses and names are compared case-insensitively through lower(...) indexes.

----------------------------------------------------------------------------------------------
-- Directory
----------------------------------------------------------------------------------------------

CREATE TABLE companies (
    id          INTEGER PRIMARY KEY,            -- company id
    name        TEXT    NOT NULL,               -- display name, unique (case-insensitive)
    web_domain  TEXT,                           -- mail domain used to attribute unknown senders (e.g. example.com)
    active      BOOLEAN NOT NULL DEFAULT 1,     -- inactive companies are never matched
    created_at  TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP -- when the row was made
);
CREATE UNIQUE INDEX companies_name ON companies (lower(name));
CREATE INDEX companies_web_domain ON companies (lower(web_domain));

CREATE TABLE contacts (
    id          INTEGER PRIMARY KEY,            -- contact id
    company_id  BIGINT  NOT NULL REFERENCES companies (id), -- the company the contact belongs to
    name        TEXT    NOT NULL DEFAULT '',    -- full name
    email1      TEXT,                           -- primary address
    email2      TEXT,                           -- second address
    email3      TEXT,                           -- third address
    active      BOOLEAN NOT NULL DEFAULT 1,     -- inactive contacts are never matched
    created_at  TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP -- when the row was made
);
CREATE INDEX contacts_company ON contacts (company_id);
CREATE INDEX contacts_email1 ON contacts (lower(email1));
CREATE INDEX contacts_email2 ON contacts (lower(email2));
CREATE INDEX contacts_email3 ON contacts (lower(email3));

CREATE TABLE resources (
    id          INTEGER PRIMARY KEY,            -- resource (staff member) id
    name        TEXT    NOT NULL DEFAULT '',    -- full name
    email       TEXT    NOT NULL,               -- mail address the resource sends from
    active      BOOLEAN NOT NULL DEFAULT 1,     -- inactive resources are never matched
    created_at  TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP -- when the row was made
);
CREATE INDEX resources_email ON resources (lower(email));

CREATE TABLE public_domains (
    domain      TEXT PRIMARY KEY                -- freemail domain (lower case): never used for company matching
);
INSERT INTO public_domains (domain) VALUES
    ('gmail.com'), ('googlemail.com'), ('outlook.com'), ('hotmail.com'), ('hotmail.de'),
    ('hotmail.co.uk'), ('live.com'), ('msn.com'), ('yahoo.com'), ('yahoo.de'), ('yahoo.co.uk'),
    ('ymail.com'), ('aol.com'), ('icloud.com'), ('me.com'), ('mac.com'), ('gmx.de'), ('gmx.net'),
    ('gmx.at'), ('gmx.ch'), ('gmx.com'), ('web.de'), ('t-online.de'), ('freenet.de'),
    ('posteo.de'), ('mailbox.org'), ('proton.me'), ('protonmail.com'), ('zoho.com'),
    ('yandex.ru'), ('mail.ru'), ('qq.com'), ('163.com'), ('126.com'), ('orange.fr'),
    ('free.fr'), ('laposte.net'), ('libero.it'), ('aim.com'), ('fastmail.com');

----------------------------------------------------------------------------------------------
-- Service desk reference data
----------------------------------------------------------------------------------------------

CREATE TABLE queues (
    id          INTEGER PRIMARY KEY,            -- queue id
    name        TEXT    NOT NULL,               -- display name, unique (case-insensitive)
    is_default  BOOLEAN NOT NULL DEFAULT 0,     -- used when a mailbox names no queue
    active      BOOLEAN NOT NULL DEFAULT 1      -- inactive queues cannot be chosen
);
CREATE UNIQUE INDEX queues_name ON queues (lower(name));
INSERT INTO queues (id, name, is_default) VALUES
    (1, 'Service Desk', 1), (2, 'Monitoring Alert', 0), (3, 'Triage', 0);

CREATE TABLE statuses (
    id          INTEGER PRIMARY KEY,            -- status id
    name        TEXT    NOT NULL,               -- display name, unique (case-insensitive)
    is_complete BOOLEAN NOT NULL DEFAULT 0,     -- the ticket is finished in this status
    is_default  BOOLEAN NOT NULL DEFAULT 0,     -- status of new tickets when a mailbox names none
    active      BOOLEAN NOT NULL DEFAULT 1      -- inactive statuses cannot be chosen
);
CREATE UNIQUE INDEX statuses_name ON statuses (lower(name));
INSERT INTO statuses (id, name, is_complete, is_default) VALUES
    (1, 'New', 0, 1), (2, 'In Progress', 0, 0), (3, 'Waiting Customer', 0, 0),
    (4, 'Customer Note Added', 0, 0), (5, 'Complete', 1, 0);

CREATE TABLE priorities (
    id          INTEGER PRIMARY KEY,            -- priority id
    name        TEXT    NOT NULL,               -- display name, unique (case-insensitive)
    sort_order  INTEGER NOT NULL DEFAULT 0,     -- lower sorts first (more urgent)
    is_default  BOOLEAN NOT NULL DEFAULT 0,     -- priority of new tickets when a mailbox names none
    active      BOOLEAN NOT NULL DEFAULT 1      -- inactive priorities cannot be chosen
);
CREATE UNIQUE INDEX priorities_name ON priorities (lower(name));
INSERT INTO priorities (id, name, sort_order, is_default) VALUES
    (1, 'Critical', 1, 0), (2, 'High', 2, 0), (3, 'Medium', 3, 1), (4, 'Low', 4, 0);

CREATE TABLE sources (
    id          INTEGER PRIMARY KEY,            -- ticket source id
    name        TEXT    NOT NULL,               -- display name, unique (case-insensitive)
    is_default  BOOLEAN NOT NULL DEFAULT 0,     -- source of mail-made tickets when a mailbox names none
    active      BOOLEAN NOT NULL DEFAULT 1      -- inactive sources cannot be chosen
);
CREATE UNIQUE INDEX sources_name ON sources (lower(name));
INSERT INTO sources (id, name, is_default) VALUES
    (1, 'Email', 1), (2, 'Phone', 0), (3, 'Client Portal', 0), (4, 'Monitoring Alert', 0),
    (5, 'Web Service', 0);

CREATE TABLE issue_types (
    id          INTEGER PRIMARY KEY,            -- issue type id
    name        TEXT    NOT NULL,               -- display name, unique (case-insensitive)
    active      BOOLEAN NOT NULL DEFAULT 1      -- inactive issue types cannot be chosen
);
CREATE UNIQUE INDEX issue_types_name ON issue_types (lower(name));
INSERT INTO issue_types (id, name) VALUES
    (1, 'Hardware'), (2, 'Software'), (3, 'Network'), (4, 'Account / Access'), (5, 'Other');

CREATE TABLE sub_issue_types (
    id            INTEGER PRIMARY KEY,          -- sub-issue type id
    issue_type_id BIGINT  NOT NULL REFERENCES issue_types (id), -- the issue type it refines
    name          TEXT    NOT NULL,             -- display name, unique within its issue type
    active        BOOLEAN NOT NULL DEFAULT 1    -- inactive sub-issue types cannot be chosen
);
CREATE UNIQUE INDEX sub_issue_types_name ON sub_issue_types (issue_type_id, lower(name));
INSERT INTO sub_issue_types (id, issue_type_id, name) VALUES
    (1, 1, 'Workstation'), (2, 1, 'Printer'), (3, 1, 'Server'),
    (4, 2, 'Installation'), (5, 2, 'Error'), (6, 2, 'Licence'),
    (7, 3, 'Connectivity'), (8, 3, 'Wi-Fi'), (9, 3, 'VPN'),
    (10, 4, 'Password Reset'), (11, 4, 'New User'), (12, 4, 'Permissions');

----------------------------------------------------------------------------------------------
-- Mailboxes (the SQL configuration) and tags
----------------------------------------------------------------------------------------------

CREATE TABLE tags (
    id          INTEGER PRIMARY KEY,            -- tag id
    label       TEXT    NOT NULL,               -- the tag as shown and matched, unique (case-insensitive)
    active      BOOLEAN NOT NULL DEFAULT 1      -- inactive tags are never assigned
);
CREATE UNIQUE INDEX tags_label ON tags (lower(label));

CREATE TABLE tag_aliases (
    id          INTEGER PRIMARY KEY,            -- alias id
    tag_id      BIGINT  NOT NULL REFERENCES tags (id) ON DELETE CASCADE, -- the tag the alias stands for
    alias       TEXT    NOT NULL                -- another phrase that assigns the tag when found
);
CREATE UNIQUE INDEX tag_aliases_alias ON tag_aliases (tag_id, lower(alias));

CREATE TABLE mailboxes (
    id                  INTEGER PRIMARY KEY,    -- mailbox id
    address             TEXT    NOT NULL,       -- envelope recipient, unique (case-insensitive, without +detail)
    name                TEXT    NOT NULL DEFAULT '', -- display name
    active              BOOLEAN NOT NULL DEFAULT 1,  -- inactive mailboxes are treated like any other address
    queue_id            BIGINT REFERENCES queues (id),          -- queue of new tickets (NULL: the default queue)
    priority_id         BIGINT REFERENCES priorities (id),      -- priority of new tickets (NULL: the default priority)
    status_id           BIGINT REFERENCES statuses (id),        -- status of new tickets (NULL: the default status)
    source_id           BIGINT REFERENCES sources (id),         -- source of new tickets (NULL: the default source, "Email")
    issue_type_id       BIGINT REFERENCES issue_types (id),     -- issue type of new tickets (NULL: none)
    sub_issue_type_id   BIGINT REFERENCES sub_issue_types (id), -- sub-issue type of new tickets (NULL: none)
    note_visibility     TEXT    NOT NULL DEFAULT 'all',         -- visibility of notes made from mail: 'internal' or 'all'
    fallback_company_id BIGINT REFERENCES companies (id),       -- company of tickets from senders nobody knows
    unknown_sender      TEXT    NOT NULL DEFAULT 'fallback',    -- senders nobody knows: 'fallback' (company above) or 'reject'
    created_at          TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, -- when the row was made
    CHECK (note_visibility IN ('internal', 'all')),
    CHECK (unknown_sender IN ('fallback', 'reject'))
);
CREATE UNIQUE INDEX mailboxes_address ON mailboxes (lower(address));

CREATE TABLE mailbox_tags (
    mailbox_id  BIGINT NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE, -- the mailbox
    tag_id      BIGINT NOT NULL REFERENCES tags (id) ON DELETE CASCADE,      -- a tag every ticket from it gets
    PRIMARY KEY (mailbox_id, tag_id)
);

CREATE TABLE settings (
    key         TEXT PRIMARY KEY,               -- setting name (see conf/example.sql for the list)
    value       TEXT NOT NULL                   -- value as text; typed and checked when read
);

----------------------------------------------------------------------------------------------
-- Tickets and notes
----------------------------------------------------------------------------------------------

CREATE TABLE number_sequences (
    kind        TEXT   NOT NULL,                -- 'T' tickets (later: projects, tasks)
    day         TEXT   NOT NULL,                -- YYYYMMDD the numbers belong to
    last_value  BIGINT NOT NULL,                -- last number handed out that day
    PRIMARY KEY (kind, day)
);

CREATE TABLE tickets (
    id                INTEGER PRIMARY KEY,      -- ticket id
    number            TEXT    NOT NULL UNIQUE,  -- TYYYYMMDD.NNNN, per-day sequence
    title             TEXT    NOT NULL,         -- decoded subject (or "New Ticket - <date>")
    description       TEXT    NOT NULL,         -- body as text
    description_html  TEXT,                     -- body as HTML when the mail had an HTML part
    status_id         BIGINT  NOT NULL REFERENCES statuses (id),     -- current status
    priority_id       BIGINT  NOT NULL REFERENCES priorities (id),   -- priority
    queue_id          BIGINT  NOT NULL REFERENCES queues (id),       -- queue
    source_id         BIGINT  NOT NULL REFERENCES sources (id),      -- how the ticket came in
    issue_type_id     BIGINT  REFERENCES issue_types (id),           -- issue type
    sub_issue_type_id BIGINT  REFERENCES sub_issue_types (id),       -- sub-issue type
    company_id        BIGINT  REFERENCES companies (id),             -- customer (NULL: own organisation)
    contact_id        BIGINT  REFERENCES contacts (id),              -- the contact who wrote in
    mailbox_id        BIGINT  REFERENCES mailboxes (id),             -- the mailbox it came through
    created_at        TIMESTAMP NOT NULL,       -- when the ticket was made
    updated_at        TIMESTAMP NOT NULL        -- last change
);
CREATE INDEX tickets_company ON tickets (company_id);

CREATE TABLE ticket_notes (
    id                  INTEGER PRIMARY KEY,    -- note id
    ticket_id           BIGINT  NOT NULL REFERENCES tickets (id), -- the ticket
    title               TEXT    NOT NULL,       -- decoded subject of the mail
    body                TEXT    NOT NULL,       -- text of the mail
    body_html           TEXT,                   -- HTML of the mail, when it had an HTML part
    author_contact_id   BIGINT  REFERENCES contacts (id),  -- author, when a contact
    author_resource_id  BIGINT  REFERENCES resources (id), -- author, when a resource
    author_address      TEXT    NOT NULL DEFAULT '',       -- sender address as written in the mail
    visibility          TEXT    NOT NULL DEFAULT 'all',    -- 'internal' (staff only) or 'all'
    mailbox_id          BIGINT  REFERENCES mailboxes (id), -- the mailbox it came through
    created_at          TIMESTAMP NOT NULL,     -- when the note was made
    CHECK (visibility IN ('internal', 'all'))
);
CREATE INDEX ticket_notes_ticket ON ticket_notes (ticket_id);

CREATE TABLE ticket_contacts (
    ticket_id   BIGINT NOT NULL REFERENCES tickets (id),  -- the ticket
    contact_id  BIGINT NOT NULL REFERENCES contacts (id), -- an additional contact kept informed
    PRIMARY KEY (ticket_id, contact_id)
);

CREATE TABLE ticket_tags (
    ticket_id   BIGINT NOT NULL REFERENCES tickets (id), -- the ticket
    tag_id      BIGINT NOT NULL REFERENCES tags (id),    -- the tag
    origin      TEXT   NOT NULL,                -- why: 'mailbox' (required tag) or 'auto' (found in the text)
    PRIMARY KEY (ticket_id, tag_id)
);

CREATE TABLE message_refs (
    id          INTEGER PRIMARY KEY,            -- row id
    message_id  TEXT   NOT NULL,                -- normalised Message-ID (no angle brackets)
    ticket_id   BIGINT NOT NULL REFERENCES tickets (id),     -- the ticket the message belongs to
    mailbox_id  BIGINT REFERENCES mailboxes (id)              -- the mailbox it came through
);
CREATE INDEX message_refs_message_id ON message_refs (message_id);

----------------------------------------------------------------------------------------------
-- Attachments over content-addressed blobs
----------------------------------------------------------------------------------------------

CREATE TABLE blobs (
    sha256      TEXT   PRIMARY KEY,             -- hex SHA-256 of the content: one row per distinct file
    size        BIGINT NOT NULL,                -- bytes
    data        BLOB   NOT NULL                 -- the content
);

CREATE TABLE attachments (
    id            INTEGER PRIMARY KEY,          -- attachment id
    owner_kind    TEXT   NOT NULL,              -- 'ticket' or 'ticket_note'
    owner_id      BIGINT NOT NULL,              -- id of the ticket or note
    filename      TEXT   NOT NULL,              -- decoded file name
    content_type  TEXT   NOT NULL,              -- MIME type, e.g. application/pdf
    size          BIGINT NOT NULL,              -- bytes
    sha256        TEXT   NOT NULL REFERENCES blobs (sha256), -- the content
    created_at    TIMESTAMP NOT NULL            -- when it was stored
);
CREATE INDEX attachments_owner ON attachments (owner_kind, owner_id);

----------------------------------------------------------------------------------------------
-- Processed messages (exactly-once) and the outbox
----------------------------------------------------------------------------------------------

CREATE TABLE processed_messages (
    id              INTEGER PRIMARY KEY,        -- row id
    mailbox_id      BIGINT NOT NULL REFERENCES mailboxes (id), -- the mailbox the message was for
    dedup_key       TEXT   NOT NULL,            -- 'mid:<Message-ID>' or 'sha256:<content hash>'; unique per mailbox
    message_id      TEXT,                       -- normalised Message-ID, when the message had one
    queue_id        TEXT,                       -- MTA queue id
    envelope_from   TEXT   NOT NULL DEFAULT '', -- MAIL FROM ('' for the null sender)
    envelope_rcpt   TEXT   NOT NULL,            -- the RCPT TO that named the mailbox
    outcome         TEXT   NOT NULL,            -- 'created', 'note_added' or 'ignored'
    object_kind     TEXT,                       -- 'ticket' or 'ticket_note'
    object_id       BIGINT,                     -- id of the object made
    ticket_id       BIGINT REFERENCES tickets (id), -- the ticket concerned
    reason          TEXT,                       -- why, for 'ignored' and noteworthy decisions
    received_at     TIMESTAMP NOT NULL,         -- when the message was processed
    raw             BLOB,                       -- the message as received (NULL when not kept)
    UNIQUE (mailbox_id, dedup_key)
);
CREATE INDEX processed_messages_received ON processed_messages (received_at);

CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY,          -- row id
    mailbox_id    BIGINT REFERENCES mailboxes (id), -- the mailbox the notification is about
    ticket_id     BIGINT REFERENCES tickets (id),   -- the ticket it is about
    recipients    TEXT   NOT NULL,              -- comma-separated envelope recipients
    subject       TEXT   NOT NULL,              -- rendered subject
    body_text     TEXT   NOT NULL,              -- rendered text body
    body_html     TEXT,                         -- rendered HTML body
    headers       TEXT   NOT NULL DEFAULT '',   -- extra header lines (Name: value, one per line)
    status        TEXT   NOT NULL DEFAULT 'queued', -- 'queued', 'sending', 'sent' or 'failed'
    attempts      INTEGER NOT NULL DEFAULT 0,   -- delivery attempts so far
    next_try_at   TIMESTAMP NOT NULL,           -- earliest next attempt
    last_error    TEXT,                         -- last failure as the server said it
    created_at    TIMESTAMP NOT NULL,           -- when the row was queued
    sent_at       TIMESTAMP                     -- when it was delivered
);
CREATE INDEX outbox_due ON outbox (status, next_try_at);
