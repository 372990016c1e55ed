-- Notifications (templates and the outbox), auto-reply bookkeeping, workflow rules.

-- Form letters per mailbox and event, rendered with minijinja (undefined variables are errors).
CREATE TABLE notification_templates (
    id          INTEGER PRIMARY KEY,            -- template id
    name        TEXT    NOT NULL,               -- unique name (case-insensitive), used by workflow rules
    mailbox_id  BIGINT  REFERENCES mailboxes (id) ON DELETE CASCADE, -- only for this mailbox (NULL: all)
    event       TEXT,                           -- sent automatically on: ticket_created, note_added, time_entry_added,
                                                -- project_note_added, task_note_added, failure (NULL: only by workflow rules)
    subject     TEXT    NOT NULL,               -- subject template (one line; the ticket number is added when missing)
    body_text   TEXT    NOT NULL,               -- text body template
    body_html   TEXT,                           -- HTML body template (values are HTML-escaped)
    active      BOOLEAN NOT NULL DEFAULT 1      -- inactive templates are not sent
);
CREATE UNIQUE INDEX notification_templates_name ON notification_templates (lower(name));

-- The outbox gains what RFC 3834-clean automatic mail needs, and a lease for safe claiming.
ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'notification'; -- 'acknowledgement', 'failure' or 'notification' (rules)
ALTER TABLE outbox ADD COLUMN envelope_from TEXT NOT NULL DEFAULT '';    -- MAIL FROM ('' = <>, as automatic replies use)
ALTER TABLE outbox ADD COLUMN from_header TEXT NOT NULL DEFAULT '';      -- From: header
ALTER TABLE outbox ADD COLUMN message_id TEXT NOT NULL DEFAULT '';       -- our Message-ID (encodes the ticket number)
ALTER TABLE outbox ADD COLUMN in_reply_to TEXT;                          -- Message-ID of the mail answered
ALTER TABLE outbox ADD COLUMN references_ids TEXT;                       -- References (space-separated ids)
ALTER TABLE outbox ADD COLUMN claimed_until TIMESTAMP;                   -- a worker holds the row until then (status 'sending')
ALTER TABLE outbox ADD COLUMN template_id BIGINT REFERENCES notification_templates (id); -- the template rendered
CREATE INDEX outbox_recipient_time ON outbox (recipients, created_at);
CREATE UNIQUE INDEX outbox_message_id ON outbox (message_id) WHERE message_id <> '';

-- Who works a queue (round-robin assignment, "queue members" recipients).
CREATE TABLE queue_members (
    queue_id     BIGINT NOT NULL REFERENCES queues (id) ON DELETE CASCADE,    -- the queue
    resource_id  BIGINT NOT NULL REFERENCES resources (id) ON DELETE CASCADE, -- a resource working it
    last_assigned_at TIMESTAMP,                                                -- round-robin: the least recently assigned goes next
    PRIMARY KEY (queue_id, resource_id)
);

ALTER TABLE tickets ADD COLUMN assigned_resource_id BIGINT REFERENCES resources (id); -- primary resource
ALTER TABLE tickets ADD COLUMN due_at TIMESTAMP;                                      -- due date and time (UTC)

-- Workflow rules: on events, when every given condition holds, do every given action.
CREATE TABLE workflow_rules (
    id              INTEGER PRIMARY KEY,        -- rule id
    position        INTEGER NOT NULL DEFAULT 100, -- order (lower first)
    name            TEXT    NOT NULL,           -- for logs and `rule list`
    active          BOOLEAN NOT NULL DEFAULT 1, -- inactive rules never fire
    on_events       TEXT    NOT NULL,           -- comma-separated: ticket_created, note_added, time_entry_added, status_changed
    -- conditions (NULL: any); names are compared case-insensitively
    if_mailbox      TEXT,                       -- mailbox address
    if_queue        TEXT,                       -- queue name
    if_priority     TEXT,                       -- priority name
    if_status       TEXT,                       -- status name
    if_company      TEXT,                       -- company name
    if_issue_type   TEXT,                       -- issue type name
    if_tag          TEXT,                       -- the ticket has this tag
    if_sender_domain TEXT,                      -- sender's domain
    if_subject      TEXT,                       -- regular expression on the subject
    if_body         TEXT,                       -- regular expression on the text
    if_source       TEXT,                       -- source name
    if_auto         BOOLEAN,                    -- the mail was auto-generated (TRUE) or not (FALSE)
    -- actions (NULL: none)
    set_queue       TEXT,                       -- queue name
    set_priority    TEXT,                       -- priority name
    set_status      TEXT,                       -- status name
    set_issue_type  TEXT,                       -- issue type name
    due_in_hours    INTEGER,                    -- due date: this many hours after the event
    assign          TEXT,                       -- a resource's address, or 'round_robin' among the queue's members
    add_tag         TEXT,                       -- tag label
    notify_template TEXT,                       -- template name to send …
    notify_roles    TEXT,                       -- … to: contact, additional_contacts, assigned, queue_members, addresses (comma-separated)
    notify_addresses TEXT                       -- fixed addresses for the role 'addresses' (comma-separated)
);

-- Default templates: the acknowledgement and the sender's failure notice start switched off
-- (`ticketmilter template enable acknowledgement`); the administrator's failure notice is on, and
-- is sent only when the setting failure_notify names an address.
INSERT INTO notification_templates (name, mailbox_id, event, subject, body_text, body_html, active) VALUES ('acknowledgement', NULL, 'ticket_created', '[{{ ticket_number }}] {{ original_subject }}', 'Hello{% if contact %} {{ contact }}{% endif %},

We received your request and opened ticket {{ ticket_number }}: {{ ticket_title }}
{% if queue %}
It has been passed to our {{ queue }} team.
{% endif %}

To add information, reply to this message and keep {{ ticket_number }} in the subject.
{% if ticket_url %}
You can follow the ticket at {{ ticket_url }}
{% endif %}

Kind regards,
{{ mailbox_name or mailbox }}
', '<p>Hello{% if contact %} {{ contact }}{% endif %},</p>
<p>We received your request and opened ticket <strong>{{ ticket_number }}</strong>: {{ ticket_title }}</p>
{% if queue %}
<p>It has been passed to our {{ queue }} team.</p>
{% endif %}
<p>To add information, reply to this message and keep {{ ticket_number }} in the subject.</p>
{% if ticket_url %}
<p><a href="{{ ticket_url }}">Follow the ticket online</a></p>
{% endif %}
<p>Kind regards,<br>{{ mailbox_name or mailbox }}</p>
', 0);
INSERT INTO notification_templates (name, mailbox_id, event, subject, body_text, body_html, active) VALUES ('failure', NULL, 'failure', 'Your message could not be processed: {{ original_subject }}', 'Hello,

Thank you for your message "{{ original_subject }}" to {{ mailbox }}.
Unfortunately we could not process it:

{{ reason }}

If you need help, please contact us by phone or from your registered e-mail address.

Kind regards,
{{ mailbox_name or mailbox }}
', NULL, 0);
INSERT INTO notification_templates (name, mailbox_id, event, subject, body_text, body_html, active) VALUES ('failure_admin', NULL, 'failure_admin', 'Message to {{ mailbox }} not processed: {{ original_subject }}', 'A message to {{ mailbox }} could not be processed.

Sender:  {{ sender }}
Subject: {{ original_subject }}
Reason:  {{ technical_reason }}
{% if reason %}
Reply to the sender: {{ reason }}
{% endif %}
', NULL, 1);
