//! The command line (DESIGN §2): argument definitions and the commands that do not need the
//! daemon. Exit status: 0 ok, 1 operation failed, 2 usage or config error.

mod backup;
mod bounce;
mod dkim;
mod dns;
mod lists;
mod queue;
mod stats;

use crate::config;
use crate::logging::{self, LogFormat};
use clap::{Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "herald",
    version,
    about = "Mail transfer and permission-based mailing-list daemon"
)]
pub struct Cli {
    /// Config file (else $HERALD_CONFIG, else /etc/herald/herald.toml if it exists, else built-in defaults)
    #[arg(long, global = true, env = "HERALD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Machine-readable output
    #[arg(long, global = true)]
    pub json: bool,
    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon in the foreground
    Serve,
    /// Validate the configuration and print it with secrets redacted
    CheckConfig,
    /// Read a password on stdin and print an argon2id PHC string for [[users]]
    HashPassword,
    /// Inspect and steer the queue (through the running daemon)
    #[command(subcommand)]
    Queue(QueueCommand),
    /// The suppression list (through the running daemon)
    #[command(subcommand)]
    Suppression(SuppressionCommand),
    /// Mailing lists and their members (through the running daemon)
    #[command(subcommand)]
    List(ListCommand),
    /// Bounce and complaint reports (offline)
    #[command(subcommand)]
    Bounce(BounceCommand),
    /// Erase an address from every list and record; keep only a keyed hash so its suppression
    /// still holds (the database is rewritten without it at the next start)
    Forget { address: String },
    /// DKIM keys (offline: writes a key file, needs no daemon)
    #[command(subcommand)]
    Dkim(dkim::DkimCommand),
    /// Print every DNS record a sending domain needs and check what is published (needs no daemon)
    Dns { domain: String },
    /// Aggregate counters: accepted, rejected, delivered, deferred, bounced, complaints,
    /// unsubscribes, queue size (through the running daemon)
    Stats,
    /// Write a consistent snapshot of the running daemon's data into DIR (empty or absent)
    Backup { dir: PathBuf },
    /// Offline: restore a backup from DIR into the configured data_dir (empty or absent)
    Restore { dir: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum BounceCommand {
    /// Parse DSN/ARF messages and print, per recipient, status, class and reason
    Parse {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Score the parser on a bounce corpus (default ../shared/corpus/bounces/public)
    Eval {
        #[arg(default_value = "../shared/corpus/bounces/public")]
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum ListCommand {
    /// Lists with member counts by status
    Ls,
    /// Members of a list (LIST is the id or the address)
    Members {
        list: String,
        #[arg(long, value_parser = ["pending", "confirmed", "unsubscribed", "bounced", "complained"])]
        status: Option<String>,
    },
    /// Add confirmed members, recording where their consent came from
    Add {
        list: String,
        #[arg(required = true)]
        addresses: Vec<String>,
        #[arg(long)]
        consent: String,
    },
    /// Send each address a double-opt-in confirmation; they stay pending until they confirm
    Invite {
        list: String,
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Unsubscribe members (silently: no mail is sent)
    Remove {
        list: String,
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Import confirmed members from a CSV file with a header line `email[,name]`
    Import {
        list: String,
        file: PathBuf,
        #[arg(long)]
        consent: String,
    },
    /// Every member as CSV (or --json)
    Export { list: String },
}

#[derive(Subcommand, Debug)]
pub enum SuppressionCommand {
    /// List suppressed addresses
    Ls,
    /// Suppress an address
    Add {
        address: String,
        #[arg(long, default_value = "global", value_parser = ["global", "marketing"])]
        scope: String,
        #[arg(long, default_value = "added by administrator")]
        reason: String,
    },
    /// Remove an address from the list
    Rm { address: String },
}

#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// List queued messages and their recipients
    Ls,
    /// Show one message: envelope, deliveries and content
    Show { id: String },
    /// Delete a message and all its deliveries
    Delete { id: String },
    /// Make deferred deliveries due now: one message, or --all
    Retry {
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
}

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

fn load_config(cli: &Cli) -> Result<config::Loaded, ExitCode> {
    let path = config::resolve_path(cli.config.as_deref());
    config::load(path.as_deref()).map_err(|e| {
        eprintln!("herald: config error: {e}");
        ExitCode::from(EXIT_USAGE)
    })
}

pub fn run(cli: Cli) -> ExitCode {
    match &cli.command {
        Command::HashPassword => hash_password(),
        Command::CheckConfig => match load_config(&cli) {
            Err(code) => code,
            Ok(loaded) => match config::redacted_toml(&loaded.config) {
                Ok(text) => {
                    let from = loaded
                        .file
                        .map_or("built-in defaults".into(), |f| f.display().to_string());
                    println!("# configuration OK ({from})\n{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("herald: {e}");
                    ExitCode::from(EXIT_USAGE)
                }
            },
        },
        Command::Serve => match load_config(&cli) {
            Err(code) => code,
            Ok(loaded) => {
                crate::memory::tune_allocator();
                logging::init(cli.log_format);
                block_on(crate::daemon::serve(loaded.file, loaded.config))
            }
        },
        Command::Queue(q) => match load_config(&cli) {
            Err(code) => code,
            Ok(loaded) => block_on(queue::run(q, &loaded.config.data_dir, cli.json)),
        },
        Command::Bounce(BounceCommand::Parse { files }) => {
            done(bounce::parse_files(files, cli.json))
        }
        Command::Bounce(BounceCommand::Eval { dir }) => done(bounce::evaluate(dir, cli.json)),
        Command::Forget { address } => match load_config(&cli) {
            Err(code) => code,
            Ok(loaded) => block_on(lists::forget(address, &loaded.config.data_dir, cli.json)),
        },
        Command::Backup { dir } => match load_config(&cli) {
            Err(code) => code,
            Ok(loaded) => block_on(backup::backup(dir, &loaded.config.data_dir, cli.json)),
        },
        Command::Restore { dir } => match load_config(&cli) {
            Err(code) => code,
            Ok(loaded) => done(backup::restore(dir, &loaded.config.data_dir, cli.json)),
        },
        Command::List(c) => match load_config(&cli) {
            Err(code) => code,
            Ok(loaded) => block_on(lists::run(c, &loaded.config.data_dir, cli.json)),
        },
        Command::Suppression(c) => match load_config(&cli) {
            Err(code) => code,
            Ok(loaded) => block_on(queue::suppression(c, &loaded.config.data_dir, cli.json)),
        },
        Command::Dkim(c) => match load_config(&cli) {
            Err(code) => code,
            Ok(loaded) => dkim::run(c, &loaded.config, cli.json),
        },
        Command::Stats => match load_config(&cli) {
            Err(code) => code,
            Ok(loaded) => block_on(stats::run(&loaded.config.data_dir, cli.json)),
        },
        Command::Dns { domain } => match load_config(&cli) {
            Err(code) => code,
            Ok(loaded) => dns::run(domain, &loaded.config, cli.json),
        },
    }
}

fn done(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn block_on(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match rt.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn hash_password() -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("herald: cannot read stdin: {e}");
        return ExitCode::from(EXIT_FAILED);
    }
    let password = input.lines().next().unwrap_or("");
    if password.is_empty() {
        eprintln!("herald: empty password on stdin");
        return ExitCode::from(EXIT_USAGE);
    }
    match crate::devuser::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("herald: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
