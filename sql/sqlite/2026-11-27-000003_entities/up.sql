-- Projects, tasks, their notes, time entries, roles and work types; per-mailbox entity
-- permissions and handling; duplicate, loop and trust settings; excluded senders; parsing rules.
-- Enumerated text columns are checked by ticketmilter when it loads them (`ticketmilter check`
-- lists bad values), not by CHECK constraints, so that later versions can add values.

CREATE TABLE roles (
    id          INTEGER PRIMARY KEY,            -- role id
    name        TEXT    NOT NULL,               -- e.g. "Engineer", unique (case-insensitive); named by #R=
    hourly_rate DOUBLE PRECISION,               -- billing rate, informational
    is_default  BOOLEAN NOT NULL DEFAULT 0,     -- role of time entries that name none
    active      BOOLEAN NOT NULL DEFAULT 1      -- inactive roles cannot be chosen
);
CREATE UNIQUE INDEX roles_name ON roles (lower(name));
INSERT INTO roles (id, name, is_default) VALUES (1, 'Engineer', 1), (2, 'Senior Engineer', 0), (3, 'Project Manager', 0);

CREATE TABLE work_types (
    id          INTEGER PRIMARY KEY,            -- work type id
    name        TEXT    NOT NULL,               -- e.g. "Remote Support", unique (case-insensitive)
    billable    BOOLEAN NOT NULL DEFAULT 1,     -- time of this type is billed
    is_default  BOOLEAN NOT NULL DEFAULT 0,     -- work type of time entries when a mailbox names none
    active      BOOLEAN NOT NULL DEFAULT 1      -- inactive work types cannot be chosen
);
CREATE UNIQUE INDEX work_types_name ON work_types (lower(name));
INSERT INTO work_types (id, name, billable, is_default) VALUES
    (1, 'Remote Support', 1, 1), (2, 'On-Site Support', 1, 0), (3, 'Internal', 0, 0);

CREATE TABLE projects (
    id          INTEGER PRIMARY KEY,            -- project id
    number      TEXT    NOT NULL UNIQUE,        -- PYYYYMMDD.NNNN, per-day sequence
    name        TEXT    NOT NULL,               -- project name
    company_id  BIGINT  REFERENCES companies (id), -- customer (NULL: own organisation)
    status_id   BIGINT  NOT NULL REFERENCES statuses (id), -- current status
    created_at  TIMESTAMP NOT NULL,             -- when the project was made
    updated_at  TIMESTAMP NOT NULL              -- last change
);

CREATE TABLE tasks (
    id                   INTEGER PRIMARY KEY,   -- task id
    number               TEXT    NOT NULL UNIQUE, -- KYYYYMMDD.NNNN, per-day sequence
    project_id           BIGINT  NOT NULL REFERENCES projects (id), -- the project
    title                TEXT    NOT NULL,      -- task title
    description          TEXT    NOT NULL DEFAULT '', -- what is to be done
    status_id            BIGINT  NOT NULL REFERENCES statuses (id), -- current status
    assigned_resource_id BIGINT  REFERENCES resources (id),        -- who works on it
    created_at           TIMESTAMP NOT NULL,    -- when the task was made
    updated_at           TIMESTAMP NOT NULL     -- last change
);
CREATE INDEX tasks_project ON tasks (project_id);

CREATE TABLE project_notes (
    id                  INTEGER PRIMARY KEY,    -- note id
    project_id          BIGINT  NOT NULL REFERENCES projects (id), -- the project
    title               TEXT    NOT NULL,       -- decoded subject of the mail
    body                TEXT    NOT NULL,       -- text of the mail
    body_html           TEXT,                   -- HTML of the mail, when it had an HTML part
    author_contact_id   BIGINT  REFERENCES contacts (id),  -- author, when a contact
    author_resource_id  BIGINT  REFERENCES resources (id), -- author, when a resource
    author_address      TEXT    NOT NULL DEFAULT '',       -- sender address as written in the mail
    visibility          TEXT    NOT NULL DEFAULT 'all',    -- 'internal' or 'all'
    unverified          BOOLEAN NOT NULL DEFAULT 0,        -- sender is neither staff nor of the project's company
    mailbox_id          BIGINT  REFERENCES mailboxes (id), -- the mailbox it came through
    created_at          TIMESTAMP NOT NULL      -- when the note was made
);
CREATE INDEX project_notes_project ON project_notes (project_id);

CREATE TABLE task_notes (
    id                  INTEGER PRIMARY KEY,    -- note id
    task_id             BIGINT  NOT NULL REFERENCES tasks (id), -- the task
    title               TEXT    NOT NULL,       -- decoded subject of the mail
    body                TEXT    NOT NULL,       -- text of the mail
    body_html           TEXT,                   -- HTML of the mail, when it had an HTML part
    author_contact_id   BIGINT  REFERENCES contacts (id),  -- author, when a contact
    author_resource_id  BIGINT  REFERENCES resources (id), -- author, when a resource
    author_address      TEXT    NOT NULL DEFAULT '',       -- sender address as written in the mail
    visibility          TEXT    NOT NULL DEFAULT 'all',    -- 'internal' or 'all'
    unverified          BOOLEAN NOT NULL DEFAULT 0,        -- sender is neither staff nor of the project's company
    mailbox_id          BIGINT  REFERENCES mailboxes (id), -- the mailbox it came through
    created_at          TIMESTAMP NOT NULL      -- when the note was made
);
CREATE INDEX task_notes_task ON task_notes (task_id);

CREATE TABLE time_entries (
    id            INTEGER PRIMARY KEY,          -- time entry id
    owner_kind    TEXT    NOT NULL,             -- 'ticket' or 'task'
    owner_id      BIGINT  NOT NULL,             -- id of the ticket or task
    resource_id   BIGINT  NOT NULL REFERENCES resources (id),  -- who worked
    role_id       BIGINT  NOT NULL REFERENCES roles (id),      -- in which role (#R=)
    work_type_id  BIGINT  NOT NULL REFERENCES work_types (id), -- what kind of work
    work_date     TEXT    NOT NULL,             -- YYYY-MM-DD the work was done (local date)
    start_time    TEXT,                         -- HH:MM when given as a range (#T=09:00-10:30)
    end_time      TEXT,                         -- HH:MM when given as a range
    minutes       INTEGER NOT NULL,             -- duration in minutes
    summary       TEXT    NOT NULL,             -- the message text below the indicator line
    mailbox_id    BIGINT  REFERENCES mailboxes (id), -- the mailbox it came through
    created_at    TIMESTAMP NOT NULL            -- when the entry was made
);
CREATE INDEX time_entries_owner ON time_entries (owner_kind, owner_id);

-- Links between tickets (duplicate handling "create and link", replies to completed tickets).
CREATE TABLE ticket_links (
    ticket_id        BIGINT NOT NULL REFERENCES tickets (id), -- the newer ticket
    linked_ticket_id BIGINT NOT NULL REFERENCES tickets (id), -- the ticket it refers to
    kind             TEXT   NOT NULL,           -- 'duplicate' or 'follow_up'
    PRIMARY KEY (ticket_id, linked_ticket_id)
);

ALTER TABLE ticket_notes ADD COLUMN unverified BOOLEAN NOT NULL DEFAULT 0; -- sender is neither staff nor of the ticket's company
ALTER TABLE tickets ADD COLUMN sender_address TEXT;  -- who wrote in (lower case), for duplicate detection
ALTER TABLE tickets ADD COLUMN subject_key TEXT;     -- normalised subject (no Re:/Fwd:, case-folded), for duplicate detection
ALTER TABLE tickets ADD COLUMN alert_id TEXT;        -- monitoring alert id (structured alerts)
ALTER TABLE tickets ADD COLUMN external_id TEXT;     -- ticket id in another system (structured alerts)
CREATE INDEX tickets_duplicates ON tickets (sender_address, subject_key, created_at);
CREATE INDEX tickets_alert ON tickets (company_id, alert_id);
CREATE INDEX tickets_external ON tickets (company_id, external_id);

ALTER TABLE processed_messages ADD COLUMN sender_address TEXT; -- sender (lower case), for the loop guard
ALTER TABLE processed_messages ADD COLUMN subject_key TEXT;    -- normalised subject, for the loop guard
ALTER TABLE processed_messages ADD COLUMN client_addr TEXT;    -- SMTP client address (reprocessing judges trust as first)
ALTER TABLE processed_messages ADD COLUMN auth_user TEXT;      -- SASL login of the SMTP session, when authenticated
CREATE INDEX processed_messages_loop ON processed_messages (sender_address, subject_key, received_at);

-- Mailboxes: which entity kinds each may make (Autotask's per-entity tabs) and how.
ALTER TABLE mailboxes ADD COLUMN allow_tickets BOOLEAN NOT NULL DEFAULT 1;        -- may create tickets
ALTER TABLE mailboxes ADD COLUMN allow_ticket_notes BOOLEAN NOT NULL DEFAULT 1;   -- may add ticket notes
ALTER TABLE mailboxes ADD COLUMN allow_ticket_time BOOLEAN NOT NULL DEFAULT 1;    -- may add ticket time entries (#T=)
ALTER TABLE mailboxes ADD COLUMN allow_project_notes BOOLEAN NOT NULL DEFAULT 1;  -- may add project notes
ALTER TABLE mailboxes ADD COLUMN allow_task_notes BOOLEAN NOT NULL DEFAULT 1;     -- may add task notes
ALTER TABLE mailboxes ADD COLUMN allow_task_time BOOLEAN NOT NULL DEFAULT 1;      -- may add task time entries (#T=)
ALTER TABLE mailboxes ADD COLUMN role_id BIGINT REFERENCES roles (id);            -- role of time entries without #R= (NULL: the default role)
ALTER TABLE mailboxes ADD COLUMN work_type_id BIGINT REFERENCES work_types (id);  -- work type of time entries (NULL: the default)
ALTER TABLE mailboxes ADD COLUMN create_contacts BOOLEAN NOT NULL DEFAULT 0;      -- add unknown senders and CC addresses as contacts (of the domain-matched or fallback company)
ALTER TABLE mailboxes ADD COLUMN cc_contacts BOOLEAN NOT NULL DEFAULT 1;          -- CC'd contacts become additional ticket contacts
ALTER TABLE mailboxes ADD COLUMN only_when_to BOOLEAN NOT NULL DEFAULT 0;         -- create tickets only when the mailbox is in To
ALTER TABLE mailboxes ADD COLUMN cc_only TEXT NOT NULL DEFAULT 'note';            -- mailbox only in Cc (with only_when_to): 'note' on a referenced ticket, else ignore; or 'ignore'
ALTER TABLE mailboxes ADD COLUMN completed_ticket TEXT NOT NULL DEFAULT 'reopen'; -- reply to a completed ticket: 'reopen', 'note' (only) or 'new' (new ticket linked to it)
ALTER TABLE mailboxes ADD COLUMN reopen_status_id BIGINT REFERENCES statuses (id); -- status a reopened ticket gets (NULL: the default open status)
ALTER TABLE mailboxes ADD COLUMN max_attachment_bytes BIGINT NOT NULL DEFAULT 5242880;  -- largest file stored (5 MB); larger ones are left out with a note
ALTER TABLE mailboxes ADD COLUMN max_attachments_bytes BIGINT NOT NULL DEFAULT 10485760; -- most bytes of files per message (10 MB)
ALTER TABLE mailboxes ADD COLUMN inline_image_bytes BIGINT NOT NULL DEFAULT 20480;      -- inline (cid:) images up to this size stay in the HTML; larger ones become attachments
ALTER TABLE mailboxes ADD COLUMN strip_quotes BOOLEAN NOT NULL DEFAULT 1;          -- notes keep only the new text of a reply (the full mail stays in HTML and raw)

-- Senders whose mail is not converted: an address, or a domain written as @example.com.
CREATE TABLE excluded_senders (
    id          INTEGER PRIMARY KEY,            -- row id
    pattern     TEXT    NOT NULL,               -- user@example.com or @example.com (case-insensitive)
    mailbox_id  BIGINT  REFERENCES mailboxes (id) ON DELETE CASCADE, -- only for this mailbox (NULL: all)
    action      TEXT    NOT NULL DEFAULT 'ignore', -- 'reject' (5xx), 'discard' (drop silently) or 'ignore' (deliver unconverted)
    note        TEXT    NOT NULL DEFAULT ''     -- why, for the admin
);

-- Parsing rules (ConnectWise parsing rules, Znuny postmaster filters), applied in order.
CREATE TABLE parsing_rules (
    id            INTEGER PRIMARY KEY,          -- rule id
    position      INTEGER NOT NULL DEFAULT 100, -- order (lower first)
    mailbox_id    BIGINT  REFERENCES mailboxes (id) ON DELETE CASCADE, -- only for this mailbox (NULL: all)
    field         TEXT    NOT NULL,             -- 'subject', 'body', 'from', or 'header:Name'
    pattern       TEXT    NOT NULL,             -- regular expression (case-insensitive unless it says (?-i))
    set_queue     TEXT,                         -- queue name; $1 … insert capture groups
    set_priority  TEXT,                         -- priority name
    set_status    TEXT,                         -- status name
    set_issue_type TEXT,                        -- issue type name
    set_company   TEXT,                         -- company name
    add_tag       TEXT,                         -- tag label
    ignore_message BOOLEAN NOT NULL DEFAULT 0,  -- do not convert matching mail (accept it unconverted)
    stop          BOOLEAN NOT NULL DEFAULT 0,   -- no further rules after a match
    active        BOOLEAN NOT NULL DEFAULT 1    -- inactive rules are skipped
);
