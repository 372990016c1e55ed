//! The command line: argument syntax (clap), opening config and store, dispatch to subcommands,
//! and the exit codes (sysexits: 64 usage, 66 no input, 75 temporary failure, 78 configuration).

mod admin;
mod check;
mod postconf;
mod inspect;
mod notify;
mod process;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use crate::config::{self, Config};
use crate::error::{Error, Result};
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "ticketmilter",
    version,
    about = "Turn mail to help-desk mailboxes into tickets, notes and time entries",
    long_about = "ticketmilter is a mail filter (milter) for Postfix and Sendmail that converts mail \
                  addressed to configured mailboxes into help-desk records while the SMTP session \
                  is open. The subcommands below run it, feed it single messages and manage its \
                  SQL configuration."
)]
pub struct Cli {
    /// Database URL: sqlite:PATH, a plain path, or postgres://… (overrides the config file)
    #[arg(long, global = true, env = "TICKETMILTER_DATABASE", value_name = "URL")]
    pub database: Option<String>,

    /// Configuration file (default: /etc/ticketmilter/ticketmilter.toml when it exists)
    #[arg(long, global = true, env = "TICKETMILTER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the milter daemon (Postfix: smtpd_milters = inet:127.0.0.1:8897)
    Run {
        /// Socket to listen on, overriding the config: inet:host:port, inet:port@host,
        /// inet6:[addr]:port, unix:/path or local:/path
        #[arg(long, value_name = "SPEC")]
        socket: Option<String>,
    },
    /// Convert one message (file or standard input) exactly as the milter would; print JSON Lines
    Process(process::ProcessArgs),
    /// Apply pending database migrations
    Migrate,
    /// Check the configuration file, the database, the SQL configuration, the sockets and the
    /// Postfix milter settings (through postconf, when Postfix is installed)
    Check {
        /// Postfix configuration directory to read (postconf -c); default: Postfix's own
        #[arg(long, value_name = "DIR")]
        postfix_config: Option<PathBuf>,
    },
    /// Run an SQL file (e.g. conf/example.sql) against the database in one transaction
    Load {
        /// The SQL file
        file: PathBuf,
    },
    /// Mailboxes: the addresses whose mail becomes tickets
    #[command(subcommand)]
    Mailbox(admin::MailboxCmd),
    /// Companies (customers)
    #[command(subcommand)]
    Company(admin::CompanyCmd),
    /// Contacts of companies
    #[command(subcommand)]
    Contact(admin::ContactCmd),
    /// Resources (staff members)
    #[command(subcommand)]
    Resource(admin::ResourceCmd),
    /// Tags and their aliases
    #[command(subcommand)]
    Tag(admin::TagCmd),
    /// Settings (typed key/value configuration in SQL)
    #[command(subcommand)]
    Setting(admin::SettingCmd),
    /// Show tickets
    #[command(subcommand)]
    Ticket(admin::TicketCmd),
    /// Projects (numbers PYYYYMMDD.NNNN)
    #[command(subcommand)]
    Project(admin::ProjectCmd),
    /// Tasks of projects (numbers KYYYYMMDD.NNNN)
    #[command(subcommand)]
    Task(admin::TaskCmd),
    /// Roles of time entries (#R=)
    #[command(subcommand)]
    Role(admin::RoleCmd),
    /// Work types of time entries
    #[command(subcommand, name = "work-type")]
    WorkType(admin::WorkTypeCmd),
    /// Processed messages: list, show, reprocess, purge raw text
    #[command(subcommand)]
    Messages(inspect::MessagesCmd),
    /// Show how a message would be decided, step by step (nothing is written)
    Explain(inspect::ExplainArgs),
    /// Notifications queued for sending: send, list, retry, purge
    #[command(subcommand)]
    Outbox(notify::OutboxCmd),
    /// Notification templates (minijinja; `template check` renders them all)
    #[command(subcommand)]
    Template(notify::TemplateCmd),
    /// Workflow rules: on events, when conditions hold, do actions
    #[command(subcommand)]
    Rule(notify::RuleCmd),
    /// Queue members (round-robin assignment and queue_members notifications)
    #[command(subcommand)]
    Queue(notify::QueueCmd),
}

/// The configuration and database a command works with.
pub struct Context {
    pub config: Config,
    pub config_path: Option<PathBuf>,
    pub database: String,
}

impl Context {
    fn new(cli: &Cli) -> Result<Context> {
        let (config, config_path) = config::resolve(cli.config.as_deref())?;
        let database = cli.database.clone().unwrap_or_else(|| config.database.url.clone());
        Ok(Context {
            config,
            config_path,
            database,
        })
    }

    /// Open the database and bring its schema up to date.
    pub fn open_store(&self) -> Result<Store> {
        let store = Store::open(&self.database, self.config.store_options())?;
        store.migrate()?;
        Ok(store)
    }
}

/// Run a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    let ctx = match Context::new(&cli) {
        Ok(ctx) => ctx,
        Err(e) => {
            crate::logging::init_cli();
            return Err(e);
        }
    };
    if let Command::Run { .. } = cli.command {
        crate::logging::init_daemon(&ctx.config.log);
    } else {
        crate::logging::init_cli();
    }
    match cli.command {
        Command::Run { socket } => {
            crate::milter::run_daemon(crate::milter::DaemonArgs {
                config: ctx.config.clone(),
                config_path: ctx.config_path.clone(),
                database: ctx.database.clone(),
                socket,
            })?;
            Ok(0)
        }
        Command::Process(args) => process::run(&ctx, args),
        Command::Migrate => {
            let store = Store::open(&ctx.database, ctx.config.store_options())?;
            let applied = store.migrate()?;
            if applied.is_empty() {
                println!("database {} is up to date", store.url().redacted());
            } else {
                for v in applied {
                    println!("applied migration {v}");
                }
            }
            Ok(0)
        }
        Command::Check { postfix_config } => check::run(&ctx, postfix_config.as_deref()),
        Command::Load { file } => {
            let sql = std::fs::read_to_string(&file)
                .map_err(|e| Error::Io(format!("cannot read {}: {e}", file.display())))?;
            let store = ctx.open_store()?;
            store
                .write(|c| crate::store::execute_script(c, &sql))
                .map_err(|e| Error::Usage(format!("{}: {e}", file.display())))?;
            println!("loaded {} into {}", file.display(), store.url().redacted());
            Ok(0)
        }
        Command::Mailbox(c) => admin::mailbox(&ctx, c),
        Command::Company(c) => admin::company(&ctx, c),
        Command::Contact(c) => admin::contact(&ctx, c),
        Command::Resource(c) => admin::resource(&ctx, c),
        Command::Tag(c) => admin::tag(&ctx, c),
        Command::Setting(c) => admin::setting(&ctx, c),
        Command::Ticket(c) => admin::ticket(&ctx, c),
        Command::Project(c) => admin::project(&ctx, c),
        Command::Task(c) => admin::task(&ctx, c),
        Command::Role(c) => admin::role(&ctx, c),
        Command::WorkType(c) => admin::work_type(&ctx, c),
        Command::Messages(c) => inspect::messages(&ctx, c),
        Command::Explain(a) => inspect::explain(&ctx, a),
        Command::Outbox(c) => notify::outbox_cmd(&ctx, c),
        Command::Template(c) => notify::template_cmd(&ctx, c),
        Command::Rule(c) => notify::rule_cmd(&ctx, c),
        Command::Queue(c) => notify::queue_cmd(&ctx, c),
    }
}

/// The exit code for an error (sysexits.h).
pub fn exit_code(e: &Error) -> i32 {
    match e {
        Error::Usage(_) => 64,
        Error::Io(_) => 66,
        Error::Config(_) => 78,
        Error::Database(_) | Error::Internal(_) => 75,
    }
}
