//! Diesel table definitions, mirroring the migrations in `sql/` (the same on both backends).

diesel::table! {
    companies (id) {
        id -> BigInt,
        name -> Text,
        web_domain -> Nullable<Text>,
        active -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    contacts (id) {
        id -> BigInt,
        company_id -> BigInt,
        name -> Text,
        email1 -> Nullable<Text>,
        email2 -> Nullable<Text>,
        email3 -> Nullable<Text>,
        active -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    resources (id) {
        id -> BigInt,
        name -> Text,
        email -> Text,
        active -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    public_domains (domain) {
        domain -> Text,
    }
}

diesel::table! {
    queues (id) {
        id -> BigInt,
        name -> Text,
        is_default -> Bool,
        active -> Bool,
    }
}

diesel::table! {
    statuses (id) {
        id -> BigInt,
        name -> Text,
        is_complete -> Bool,
        is_default -> Bool,
        active -> Bool,
    }
}

diesel::table! {
    priorities (id) {
        id -> BigInt,
        name -> Text,
        sort_order -> Integer,
        is_default -> Bool,
        active -> Bool,
    }
}

diesel::table! {
    sources (id) {
        id -> BigInt,
        name -> Text,
        is_default -> Bool,
        active -> Bool,
    }
}

diesel::table! {
    issue_types (id) {
        id -> BigInt,
        name -> Text,
        active -> Bool,
    }
}

diesel::table! {
    sub_issue_types (id) {
        id -> BigInt,
        issue_type_id -> BigInt,
        name -> Text,
        active -> Bool,
    }
}

diesel::table! {
    tags (id) {
        id -> BigInt,
        label -> Text,
        active -> Bool,
    }
}

diesel::table! {
    tag_aliases (id) {
        id -> BigInt,
        tag_id -> BigInt,
        alias -> Text,
    }
}

diesel::table! {
    roles (id) {
        id -> BigInt,
        name -> Text,
        hourly_rate -> Nullable<Double>,
        is_default -> Bool,
        active -> Bool,
    }
}

diesel::table! {
    work_types (id) {
        id -> BigInt,
        name -> Text,
        billable -> Bool,
        is_default -> Bool,
        active -> Bool,
    }
}

diesel::table! {
    projects (id) {
        id -> BigInt,
        number -> Text,
        name -> Text,
        company_id -> Nullable<BigInt>,
        status_id -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    tasks (id) {
        id -> BigInt,
        number -> Text,
        project_id -> BigInt,
        title -> Text,
        description -> Text,
        status_id -> BigInt,
        assigned_resource_id -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    project_notes (id) {
        id -> BigInt,
        project_id -> BigInt,
        title -> Text,
        body -> Text,
        body_html -> Nullable<Text>,
        author_contact_id -> Nullable<BigInt>,
        author_resource_id -> Nullable<BigInt>,
        author_address -> Text,
        visibility -> Text,
        unverified -> Bool,
        mailbox_id -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    task_notes (id) {
        id -> BigInt,
        task_id -> BigInt,
        title -> Text,
        body -> Text,
        body_html -> Nullable<Text>,
        author_contact_id -> Nullable<BigInt>,
        author_resource_id -> Nullable<BigInt>,
        author_address -> Text,
        visibility -> Text,
        unverified -> Bool,
        mailbox_id -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    time_entries (id) {
        id -> BigInt,
        owner_kind -> Text,
        owner_id -> BigInt,
        resource_id -> BigInt,
        role_id -> BigInt,
        work_type_id -> BigInt,
        work_date -> Text,
        start_time -> Nullable<Text>,
        end_time -> Nullable<Text>,
        minutes -> Integer,
        summary -> Text,
        mailbox_id -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    ticket_links (ticket_id, linked_ticket_id) {
        ticket_id -> BigInt,
        linked_ticket_id -> BigInt,
        kind -> Text,
    }
}

diesel::table! {
    excluded_senders (id) {
        id -> BigInt,
        pattern -> Text,
        mailbox_id -> Nullable<BigInt>,
        action -> Text,
        note -> Text,
    }
}

diesel::table! {
    parsing_rules (id) {
        id -> BigInt,
        position -> Integer,
        mailbox_id -> Nullable<BigInt>,
        field -> Text,
        pattern -> Text,
        set_queue -> Nullable<Text>,
        set_priority -> Nullable<Text>,
        set_status -> Nullable<Text>,
        set_issue_type -> Nullable<Text>,
        set_company -> Nullable<Text>,
        add_tag -> Nullable<Text>,
        ignore_message -> Bool,
        stop -> Bool,
        active -> Bool,
    }
}

diesel::table! {
    mailboxes (id) {
        id -> BigInt,
        address -> Text,
        name -> Text,
        active -> Bool,
        queue_id -> Nullable<BigInt>,
        priority_id -> Nullable<BigInt>,
        status_id -> Nullable<BigInt>,
        source_id -> Nullable<BigInt>,
        issue_type_id -> Nullable<BigInt>,
        sub_issue_type_id -> Nullable<BigInt>,
        note_visibility -> Text,
        fallback_company_id -> Nullable<BigInt>,
        unknown_sender -> Text,
        created_at -> Timestamp,
        after_conversion -> Text,
        allow_tickets -> Bool,
        allow_ticket_notes -> Bool,
        allow_ticket_time -> Bool,
        allow_project_notes -> Bool,
        allow_task_notes -> Bool,
        allow_task_time -> Bool,
        role_id -> Nullable<BigInt>,
        work_type_id -> Nullable<BigInt>,
        create_contacts -> Bool,
        cc_contacts -> Bool,
        only_when_to -> Bool,
        cc_only -> Text,
        completed_ticket -> Text,
        reopen_status_id -> Nullable<BigInt>,
        max_attachment_bytes -> BigInt,
        max_attachments_bytes -> BigInt,
        inline_image_bytes -> BigInt,
        strip_quotes -> Bool,
    }
}

diesel::table! {
    mailbox_tags (mailbox_id, tag_id) {
        mailbox_id -> BigInt,
        tag_id -> BigInt,
    }
}

diesel::table! {
    settings (key) {
        key -> Text,
        value -> Text,
    }
}

diesel::table! {
    number_sequences (kind, day) {
        kind -> Text,
        day -> Text,
        last_value -> BigInt,
    }
}

diesel::table! {
    tickets (id) {
        id -> BigInt,
        number -> Text,
        title -> Text,
        description -> Text,
        description_html -> Nullable<Text>,
        status_id -> BigInt,
        priority_id -> BigInt,
        queue_id -> BigInt,
        source_id -> BigInt,
        issue_type_id -> Nullable<BigInt>,
        sub_issue_type_id -> Nullable<BigInt>,
        company_id -> Nullable<BigInt>,
        contact_id -> Nullable<BigInt>,
        mailbox_id -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        sender_address -> Nullable<Text>,
        subject_key -> Nullable<Text>,
        alert_id -> Nullable<Text>,
        external_id -> Nullable<Text>,
        assigned_resource_id -> Nullable<BigInt>,
        due_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    ticket_notes (id) {
        id -> BigInt,
        ticket_id -> BigInt,
        title -> Text,
        body -> Text,
        body_html -> Nullable<Text>,
        author_contact_id -> Nullable<BigInt>,
        author_resource_id -> Nullable<BigInt>,
        author_address -> Text,
        visibility -> Text,
        mailbox_id -> Nullable<BigInt>,
        created_at -> Timestamp,
        unverified -> Bool,
    }
}

diesel::table! {
    ticket_contacts (ticket_id, contact_id) {
        ticket_id -> BigInt,
        contact_id -> BigInt,
    }
}

diesel::table! {
    ticket_tags (ticket_id, tag_id) {
        ticket_id -> BigInt,
        tag_id -> BigInt,
        origin -> Text,
    }
}

diesel::table! {
    message_refs (id) {
        id -> BigInt,
        message_id -> Text,
        ticket_id -> BigInt,
        mailbox_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    blobs (sha256) {
        sha256 -> Text,
        size -> BigInt,
        data -> Binary,
    }
}

diesel::table! {
    attachments (id) {
        id -> BigInt,
        owner_kind -> Text,
        owner_id -> BigInt,
        filename -> Text,
        content_type -> Text,
        size -> BigInt,
        sha256 -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    processed_messages (id) {
        id -> BigInt,
        mailbox_id -> BigInt,
        dedup_key -> Text,
        message_id -> Nullable<Text>,
        queue_id -> Nullable<Text>,
        envelope_from -> Text,
        envelope_rcpt -> Text,
        outcome -> Text,
        object_kind -> Nullable<Text>,
        object_id -> Nullable<BigInt>,
        ticket_id -> Nullable<BigInt>,
        reason -> Nullable<Text>,
        received_at -> Timestamp,
        raw -> Nullable<Binary>,
        sender_address -> Nullable<Text>,
        subject_key -> Nullable<Text>,
        client_addr -> Nullable<Text>,
        auth_user -> Nullable<Text>,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        mailbox_id -> Nullable<BigInt>,
        ticket_id -> Nullable<BigInt>,
        recipients -> Text,
        subject -> Text,
        body_text -> Text,
        body_html -> Nullable<Text>,
        headers -> Text,
        status -> Text,
        attempts -> Integer,
        next_try_at -> Timestamp,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        kind -> Text,
        envelope_from -> Text,
        from_header -> Text,
        message_id -> Text,
        in_reply_to -> Nullable<Text>,
        references_ids -> Nullable<Text>,
        claimed_until -> Nullable<Timestamp>,
        template_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    notification_templates (id) {
        id -> BigInt,
        name -> Text,
        mailbox_id -> Nullable<BigInt>,
        event -> Nullable<Text>,
        subject -> Text,
        body_text -> Text,
        body_html -> Nullable<Text>,
        active -> Bool,
    }
}

diesel::table! {
    queue_members (queue_id, resource_id) {
        queue_id -> BigInt,
        resource_id -> BigInt,
        last_assigned_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    workflow_rules (id) {
        id -> BigInt,
        position -> Integer,
        name -> Text,
        active -> Bool,
        on_events -> Text,
        if_mailbox -> Nullable<Text>,
        if_queue -> Nullable<Text>,
        if_priority -> Nullable<Text>,
        if_status -> Nullable<Text>,
        if_company -> Nullable<Text>,
        if_issue_type -> Nullable<Text>,
        if_tag -> Nullable<Text>,
        if_sender_domain -> Nullable<Text>,
        if_subject -> Nullable<Text>,
        if_body -> Nullable<Text>,
        if_source -> Nullable<Text>,
        if_auto -> Nullable<Bool>,
        set_queue -> Nullable<Text>,
        set_priority -> Nullable<Text>,
        set_status -> Nullable<Text>,
        set_issue_type -> Nullable<Text>,
        due_in_hours -> Nullable<Integer>,
        assign -> Nullable<Text>,
        add_tag -> Nullable<Text>,
        notify_template -> Nullable<Text>,
        notify_roles -> Nullable<Text>,
        notify_addresses -> Nullable<Text>,
    }
}

diesel::joinable!(contacts -> companies (company_id));
diesel::joinable!(tag_aliases -> tags (tag_id));
diesel::joinable!(mailbox_tags -> tags (tag_id));
diesel::joinable!(ticket_tags -> tags (tag_id));
diesel::joinable!(ticket_notes -> tickets (ticket_id));
diesel::joinable!(message_refs -> tickets (ticket_id));
diesel::joinable!(processed_messages -> tickets (ticket_id));
diesel::joinable!(processed_messages -> mailboxes (mailbox_id));
diesel::joinable!(tickets -> statuses (status_id));
diesel::joinable!(tickets -> priorities (priority_id));
diesel::joinable!(tickets -> queues (queue_id));
diesel::joinable!(tickets -> sources (source_id));
diesel::joinable!(tickets -> companies (company_id));
diesel::joinable!(tickets -> mailboxes (mailbox_id));
diesel::joinable!(mailboxes -> queues (queue_id));
diesel::joinable!(mailboxes -> priorities (priority_id));
diesel::joinable!(mailboxes -> statuses (status_id));
diesel::joinable!(mailboxes -> sources (source_id));
diesel::joinable!(mailboxes -> companies (fallback_company_id));

diesel::joinable!(tasks -> projects (project_id));
diesel::joinable!(ticket_contacts -> contacts (contact_id));
diesel::joinable!(queue_members -> resources (resource_id));
diesel::joinable!(queue_members -> queues (queue_id));
diesel::joinable!(projects -> companies (company_id));
diesel::joinable!(project_notes -> projects (project_id));
diesel::joinable!(task_notes -> tasks (task_id));

diesel::allow_tables_to_appear_in_same_query!(
    roles, work_types, projects, tasks, project_notes, task_notes, time_entries, ticket_links,
    excluded_senders, parsing_rules, notification_templates, queue_members, workflow_rules,
    companies, contacts, resources, public_domains, queues, statuses, priorities, sources,
    issue_types, sub_issue_types, tags, tag_aliases, mailboxes, mailbox_tags, settings,
    number_sequences, tickets, ticket_notes, ticket_contacts, ticket_tags, message_refs, blobs,
    attachments, processed_messages, outbox,
);
