//! Admin subcommands over the SQL configuration and directory: mailbox, company, contact,
//! resource, tag, setting, ticket. Each change runs in one transaction.

use clap::{Args, Subcommand};

use super::Context;
use crate::error::{Error, Result};
use crate::pipeline::snapshot::{SETTING_KEYS, Settings};
use crate::store::{conf, directory, mailboxes, projects, tags, tickets};

/// Print rows as left-aligned columns under a header.
pub(super) fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{:w$}  ", c, w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r);
    }
}

fn yes_no_arg(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!("{s:?}: expected yes or no")),
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes".into() } else { "no".into() }
}

#[derive(Debug, Args, Default)]
pub struct MailboxOpts {
    /// Display name
    #[arg(long)]
    name: Option<String>,
    /// Queue of new tickets ("default" for the default queue)
    #[arg(long)]
    queue: Option<String>,
    /// Priority of new tickets
    #[arg(long)]
    priority: Option<String>,
    /// Status of new tickets
    #[arg(long)]
    status: Option<String>,
    /// Source of new tickets (default "Email")
    #[arg(long)]
    source: Option<String>,
    /// Issue type of new tickets
    #[arg(long)]
    issue_type: Option<String>,
    /// Visibility of notes made from mail: internal or all
    #[arg(long, value_name = "internal|all")]
    note_visibility: Option<String>,
    /// Company of tickets from senders nobody knows ("" to clear)
    #[arg(long, value_name = "NAME")]
    fallback_company: Option<String>,
    /// What to do with mail from senders nobody knows
    #[arg(long, value_name = "fallback|reject")]
    unknown_sender: Option<String>,
    /// What the milter does with the mailbox's copy of a converted message
    #[arg(long, value_name = "deliver|remove|discard")]
    after_conversion: Option<String>,
    /// Entity kinds the mailbox may create, comma-separated (replaces the set): tickets,
    /// ticket-notes, ticket-time, project-notes, task-notes, task-time, all, none
    #[arg(long, value_name = "KINDS")]
    allow: Option<String>,
    /// Role of time entries without #R=
    #[arg(long)]
    role: Option<String>,
    /// Work type of time entries
    #[arg(long)]
    work_type: Option<String>,
    /// Add unknown senders and CC addresses as contacts (of the domain-matched or fallback company)
    #[arg(long, value_name = "yes|no", value_parser = yes_no_arg)]
    create_contacts: Option<bool>,
    /// CC'd contacts become additional ticket contacts
    #[arg(long, value_name = "yes|no", value_parser = yes_no_arg)]
    cc_contacts: Option<bool>,
    /// Create tickets only when the mailbox is in To
    #[arg(long, value_name = "yes|no", value_parser = yes_no_arg)]
    only_when_to: Option<bool>,
    /// When only in Cc (with --only-when-to yes): note (on a referenced ticket) or ignore
    #[arg(long, value_name = "note|ignore")]
    cc_only: Option<String>,
    /// A reply to a completed ticket: reopen, note (only) or new (linked ticket)
    #[arg(long, value_name = "reopen|note|new")]
    completed_ticket: Option<String>,
    /// Status a reopened ticket gets
    #[arg(long, value_name = "STATUS")]
    reopen_status: Option<String>,
    /// Largest file stored (bytes); larger ones are left out with a note
    #[arg(long, value_name = "BYTES")]
    max_attachment_size: Option<u64>,
    /// Most bytes of files stored per message
    #[arg(long, value_name = "BYTES")]
    max_attachments_size: Option<u64>,
    /// Inline images up to this size stay in the HTML; larger ones become attachments
    #[arg(long, value_name = "BYTES")]
    inline_image_size: Option<u64>,
    /// Notes keep only the new text of a reply
    #[arg(long, value_name = "yes|no", value_parser = yes_no_arg)]
    strip_quotes: Option<bool>,
    /// Required tag given to every ticket (repeat; replaces the list)
    #[arg(long = "tag", value_name = "LABEL")]
    tags: Vec<String>,
    /// Remove all required tags
    #[arg(long, conflicts_with = "tags")]
    no_tags: bool,
}

impl MailboxOpts {
    fn spec(self, active: Option<bool>) -> mailboxes::MailboxSpec {
        mailboxes::MailboxSpec {
            name: self.name,
            active,
            queue: self.queue,
            priority: self.priority,
            status: self.status,
            source: self.source,
            issue_type: self.issue_type,
            note_visibility: self.note_visibility,
            fallback_company: self.fallback_company,
            unknown_sender: self.unknown_sender,
            after_conversion: self.after_conversion,
            role: self.role,
            work_type: self.work_type,
            allow: self.allow.map(|a| vec![a]),
            create_contacts: self.create_contacts,
            cc_contacts: self.cc_contacts,
            only_when_to: self.only_when_to,
            cc_only: self.cc_only,
            completed_ticket: self.completed_ticket,
            reopen_status: self.reopen_status,
            max_attachment_bytes: self.max_attachment_size,
            max_attachments_bytes: self.max_attachments_size,
            inline_image_bytes: self.inline_image_size,
            strip_quotes: self.strip_quotes,
            tags: if self.no_tags {
                Some(Vec::new())
            } else if self.tags.is_empty() {
                None
            } else {
                Some(self.tags)
            },
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum MailboxCmd {
    /// Add a mailbox (active)
    Add {
        /// The address, e.g. support@example.com
        address: String,
        #[command(flatten)]
        opts: MailboxOpts,
    },
    /// Change a mailbox
    Set {
        address: String,
        #[command(flatten)]
        opts: MailboxOpts,
        /// Make the mailbox active again
        #[arg(long)]
        enable: bool,
    },
    /// Stop converting mail to a mailbox (the row stays)
    Disable { address: String },
    /// List mailboxes
    List,
}

pub fn mailbox(ctx: &Context, cmd: MailboxCmd) -> Result<i32> {
    let store = ctx.open_store()?;
    match cmd {
        MailboxCmd::Add { address, opts } => {
            let spec = opts.spec(None);
            let id = store.write(|c| mailboxes::add(c, &address, &spec))?;
            println!("added mailbox {address} (id {id})");
        }
        MailboxCmd::Set { address, opts, enable } => {
            let spec = opts.spec(enable.then_some(true));
            store.write(|c| mailboxes::set(c, &address, &spec))?;
            println!("changed mailbox {address}");
        }
        MailboxCmd::Disable { address } => {
            let spec = mailboxes::MailboxSpec {
                active: Some(false),
                ..Default::default()
            };
            store.write(|c| mailboxes::set(c, &address, &spec))?;
            println!("disabled mailbox {address}");
        }
        MailboxCmd::List => {
            let rows = store.read(mailboxes::list)?;
            table(
                &["ADDRESS", "ACTIVE", "QUEUE", "PRIORITY", "STATUS", "NOTES", "UNKNOWN SENDER", "FALLBACK COMPANY", "AFTER", "TAGS"],
                rows.into_iter()
                    .map(|m| {
                        vec![
                            m.address,
                            yes_no(m.active),
                            m.queue.unwrap_or_else(|| "(default)".into()),
                            m.priority.unwrap_or_else(|| "(default)".into()),
                            m.status.unwrap_or_else(|| "(default)".into()),
                            m.note_visibility,
                            m.unknown_sender,
                            m.fallback_company.unwrap_or_else(|| "-".into()),
                            m.after_conversion,
                            m.tags.join(", "),
                        ]
                    })
                    .collect(),
            );
        }
    }
    Ok(0)
}

#[derive(Debug, Subcommand)]
pub enum CompanyCmd {
    /// Add a company
    Add {
        name: String,
        /// Mail domain that attributes unknown senders to this company
        #[arg(long)]
        domain: Option<String>,
    },
    /// List companies
    List,
}

pub fn company(ctx: &Context, cmd: CompanyCmd) -> Result<i32> {
    let store = ctx.open_store()?;
    match cmd {
        CompanyCmd::Add { name, domain } => {
            let id = store.write(|c| directory::add_company(c, &name, domain.as_deref()))?;
            println!("added company {name:?} (id {id})");
        }
        CompanyCmd::List => {
            let rows = store.read(directory::list_companies)?;
            table(
                &["ID", "NAME", "DOMAIN", "ACTIVE"],
                rows.into_iter()
                    .map(|(id, name, d, a)| vec![id.to_string(), name, d.unwrap_or_else(|| "-".into()), yes_no(a)])
                    .collect(),
            );
        }
    }
    Ok(0)
}

#[derive(Debug, Subcommand)]
pub enum ContactCmd {
    /// Add a contact
    Add {
        /// Primary address
        email: String,
        /// The contact's company (by name)
        #[arg(long)]
        company: String,
        /// Full name
        #[arg(long)]
        name: Option<String>,
        /// A second or third address (repeat)
        #[arg(long = "also", value_name = "EMAIL")]
        also: Vec<String>,
    },
    /// List contacts
    List,
}

pub fn contact(ctx: &Context, cmd: ContactCmd) -> Result<i32> {
    let store = ctx.open_store()?;
    match cmd {
        ContactCmd::Add { email, company, name, also } => {
            let id = store.write(|c| directory::add_contact(c, &email, &company, name.as_deref(), &also))?;
            println!("added contact {email} of {company:?} (id {id})");
        }
        ContactCmd::List => {
            let rows = store.read(directory::list_contacts)?;
            table(
                &["ID", "NAME", "ADDRESSES", "COMPANY", "ACTIVE"],
                rows.into_iter()
                    .map(|(id, n, a, c, act)| vec![id.to_string(), n, a.join(", "), c, yes_no(act)])
                    .collect(),
            );
        }
    }
    Ok(0)
}

#[derive(Debug, Subcommand)]
pub enum ResourceCmd {
    /// Add a resource (staff member)
    Add {
        email: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// List resources
    List,
}

pub fn resource(ctx: &Context, cmd: ResourceCmd) -> Result<i32> {
    let store = ctx.open_store()?;
    match cmd {
        ResourceCmd::Add { email, name } => {
            let id = store.write(|c| directory::add_resource(c, &email, name.as_deref()))?;
            println!("added resource {email} (id {id})");
        }
        ResourceCmd::List => {
            let rows = store.read(directory::list_resources)?;
            table(
                &["ID", "NAME", "ADDRESS", "ACTIVE"],
                rows.into_iter()
                    .map(|(id, n, e, a)| vec![id.to_string(), n, e, yes_no(a)])
                    .collect(),
            );
        }
    }
    Ok(0)
}

#[derive(Debug, Subcommand)]
pub enum TagCmd {
    /// Add a tag (or aliases to an existing tag)
    Add {
        label: String,
        /// Another phrase that assigns the tag (repeat)
        #[arg(long = "alias", value_name = "PHRASE")]
        aliases: Vec<String>,
    },
    /// List tags
    List,
}

pub fn tag(ctx: &Context, cmd: TagCmd) -> Result<i32> {
    let store = ctx.open_store()?;
    match cmd {
        TagCmd::Add { label, aliases } => {
            let id = store.write(|c| tags::add_tag(c, &label, &aliases))?;
            println!("tag {label:?} (id {id}) has aliases: {}", {
                let all = store.read(tags::list_tags)?;
                all.into_iter().find(|t| t.0 == id).map(|t| t.3.join(", ")).unwrap_or_default()
            });
        }
        TagCmd::List => {
            let rows = store.read(tags::list_tags)?;
            table(
                &["ID", "LABEL", "ACTIVE", "ALIASES"],
                rows.into_iter()
                    .map(|(id, l, a, al)| vec![id.to_string(), l, yes_no(a), al.join(", ")])
                    .collect(),
            );
        }
    }
    Ok(0)
}

#[derive(Debug, Subcommand)]
pub enum SettingCmd {
    /// Set a setting (checked before it is written)
    Set { key: String, value: String },
    /// Show every setting with its value and meaning
    List,
}

pub fn setting(ctx: &Context, cmd: SettingCmd) -> Result<i32> {
    let store = ctx.open_store()?;
    match cmd {
        SettingCmd::Set { key, value } => {
            let (_, problems) = Settings::from_rows(&[(key.clone(), value.clone())]);
            if let Some(p) = problems.first() {
                return Err(Error::Usage(p.clone()));
            }
            store.write(|c| conf::set_setting(c, &key, &value))?;
            println!("{key} = {value}");
        }
        SettingCmd::List => {
            let rows = store.read(conf::load)?.settings;
            table(
                &["KEY", "VALUE", "DEFAULT", "MEANING"],
                SETTING_KEYS
                    .iter()
                    .map(|(k, d, m)| {
                        let v = rows.iter().find(|(rk, _)| rk == k).map(|(_, v)| v.clone()).unwrap_or_else(|| d.to_string());
                        vec![k.to_string(), v, d.to_string(), m.to_string()]
                    })
                    .collect(),
            );
        }
    }
    Ok(0)
}

#[derive(Debug, Subcommand)]
pub enum TicketCmd {
    /// Show a ticket with its notes, tags and attachments (JSON)
    Show { number: String },
    /// List the most recent tickets
    List {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

pub fn ticket(ctx: &Context, cmd: TicketCmd) -> Result<i32> {
    let store = ctx.open_store()?;
    match cmd {
        TicketCmd::Show { number } => {
            let view = store
                .read(|c| tickets::view(c, &number))?
                .ok_or_else(|| Error::Usage(format!("no ticket {number}")))?;
            println!("{}", serde_json::to_string_pretty(&view).map_err(|e| Error::Internal(e.to_string()))?);
        }
        TicketCmd::List { limit } => {
            let rows = store.read(|c| tickets::list(c, limit))?;
            table(
                &["NUMBER", "STATUS", "COMPANY", "CREATED", "TITLE"],
                rows.into_iter()
                    .map(|(n, t, s, c, at)| {
                        vec![n, s, c.unwrap_or_else(|| "-".into()), at.format("%Y-%m-%d %H:%M").to_string(), t]
                    })
                    .collect(),
            );
        }
    }
    Ok(0)
}

/// Today's date (local) as YYYYMMDD, for new project and task numbers.
fn today(ctx: &Context) -> Result<String> {
    let _ = ctx;
    Ok(chrono::Local::now().format("%Y%m%d").to_string())
}

#[derive(Debug, Subcommand)]
pub enum ProjectCmd {
    /// Add a project
    Add {
        name: String,
        /// The customer (by name)
        #[arg(long)]
        company: Option<String>,
    },
    /// List projects
    List,
}

pub fn project(ctx: &Context, cmd: ProjectCmd) -> Result<i32> {
    let store = ctx.open_store()?;
    match cmd {
        ProjectCmd::Add { name, company } => {
            let day = today(ctx)?;
            let number = store.write(|c| projects::add_project(c, &name, company.as_deref(), &day))?;
            println!("added project {number} {name:?}");
        }
        ProjectCmd::List => {
            let rows = store.read(projects::list_projects)?;
            table(
                &["NUMBER", "STATUS", "COMPANY", "NAME"],
                rows.into_iter().map(|(n, name, c, s)| vec![n, s, c.unwrap_or_else(|| "-".into()), name]).collect(),
            );
        }
    }
    Ok(0)
}

#[derive(Debug, Subcommand)]
pub enum TaskCmd {
    /// Add a task to a project
    Add {
        /// The project number (PYYYYMMDD.NNNN)
        project: String,
        title: String,
        /// The resource (by address) who works on it
        #[arg(long, value_name = "EMAIL")]
        assign: Option<String>,
    },
    /// List tasks
    List,
}

pub fn task(ctx: &Context, cmd: TaskCmd) -> Result<i32> {
    let store = ctx.open_store()?;
    match cmd {
        TaskCmd::Add { project, title, assign } => {
            let day = today(ctx)?;
            let number = store.write(|c| projects::add_task(c, &project, &title, assign.as_deref(), &day))?;
            println!("added task {number} {title:?} to {}", project.to_ascii_uppercase());
        }
        TaskCmd::List => {
            let rows = store.read(projects::list_tasks)?;
            table(
                &["NUMBER", "PROJECT", "STATUS", "ASSIGNED", "TITLE"],
                rows.into_iter().map(|(n, p, t, s, who)| vec![n, p, s, who.unwrap_or_else(|| "-".into()), t]).collect(),
            );
        }
    }
    Ok(0)
}

#[derive(Debug, Subcommand)]
pub enum RoleCmd {
    /// Add a role
    Add {
        name: String,
        /// Hourly rate (informational)
        #[arg(long)]
        rate: Option<f64>,
    },
    /// List roles
    List,
}

pub fn role(ctx: &Context, cmd: RoleCmd) -> Result<i32> {
    let store = ctx.open_store()?;
    match cmd {
        RoleCmd::Add { name, rate } => {
            let id = store.write(|c| projects::add_role(c, &name, rate))?;
            println!("added role {name:?} (id {id})");
        }
        RoleCmd::List => {
            let rows = store.read(projects::list_roles)?;
            table(
                &["ID", "NAME", "RATE", "DEFAULT", "ACTIVE"],
                rows.into_iter()
                    .map(|(id, n, r, d, a)| vec![id.to_string(), n, r.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into()), yes_no(d), yes_no(a)])
                    .collect(),
            );
        }
    }
    Ok(0)
}

#[derive(Debug, Subcommand)]
pub enum WorkTypeCmd {
    /// Add a work type
    Add {
        name: String,
        /// Time of this type is not billed
        #[arg(long)]
        non_billable: bool,
    },
    /// List work types
    List,
}

pub fn work_type(ctx: &Context, cmd: WorkTypeCmd) -> Result<i32> {
    let store = ctx.open_store()?;
    match cmd {
        WorkTypeCmd::Add { name, non_billable } => {
            let id = store.write(|c| projects::add_work_type(c, &name, !non_billable))?;
            println!("added work type {name:?} (id {id})");
        }
        WorkTypeCmd::List => {
            let rows = store.read(projects::list_work_types)?;
            table(
                &["ID", "NAME", "BILLABLE", "DEFAULT", "ACTIVE"],
                rows.into_iter().map(|(id, n, b, d, a)| vec![id.to_string(), n, yes_no(b), yes_no(d), yes_no(a)]).collect(),
            );
        }
    }
    Ok(0)
}
