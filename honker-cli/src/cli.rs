//! The command line, as clap parses it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Look at and act on a honker job file: the SQLite database your service
/// (or the `honker` Python package) keeps its jobs in, or the PostgreSQL
/// database of a service that outgrew one machine (a `postgres://` URL;
/// `?honker_schema=NAME` for a schema other than `honker`). Reading
/// commands open a file read-only and never create it; writing commands
/// say what they changed.
#[derive(Debug, Parser)]
#[command(name = "honker", version, propagate_version = true)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Output options shared by every command.
#[derive(Debug, Args, Clone, Copy)]
pub struct Output {
    /// Print one JSON document instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every queue: pending, scheduled, running, dead, paused, how far
    /// behind, when the next scheduled job falls due.
    Stats {
        /// The database: a SQLite file, or a PostgreSQL `postgres://` URL.
        db: PathBuf,
        #[command(flatten)]
        out: Output,
    },
    /// A queue's jobs in one state.
    Jobs {
        /// The database: a SQLite file, or a PostgreSQL `postgres://` URL.
        db: PathBuf,
        /// The queue.
        #[arg(long, short)]
        queue: String,
        /// Which jobs.
        #[arg(long, short, value_enum, default_value = "pending")]
        state: StateArg,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Skip this many first.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Only jobs whose payload contains this text: a job's name, or a
        /// piece of its arguments as the JSON is written.
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    /// One job, live or dead: payload, attempts, last error, times, result.
    Job {
        /// The database: a SQLite file, or a PostgreSQL `postgres://` URL.
        db: PathBuf,
        /// The job id.
        id: i64,
        #[command(flatten)]
        out: Output,
    },
    /// Retry (requeue) or purge dead jobs: by id, by queue, or all.
    Dead {
        /// The database: a SQLite file, or a PostgreSQL `postgres://` URL.
        db: PathBuf,
        /// What to do.
        action: DeadAction,
        /// The dead jobs to act on.
        ids: Vec<i64>,
        /// Every dead job of this queue.
        #[arg(long, short, conflicts_with = "ids")]
        queue: Option<String>,
        /// Every dead job of the file.
        #[arg(long, conflicts_with_all = ["ids", "queue"])]
        all: bool,
        /// Only those whose last error contains this text.
        #[arg(long)]
        error_contains: Option<String>,
        /// Only those whose payload contains this text: a job's name, or a
        /// piece of its arguments as the JSON is written.
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
        /// List what would be done, and change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        out: Output,
    },
    /// Cancel a pending or running job (a running one is told to stop).
    Cancel {
        /// The database: a SQLite file, or a PostgreSQL `postgres://` URL.
        db: PathBuf,
        /// The job id.
        id: i64,
        #[command(flatten)]
        out: Output,
    },
    /// Pause a queue: no honker-rs worker claims from it until resumed.
    Pause {
        /// The database: a SQLite file, or a PostgreSQL `postgres://` URL.
        db: PathBuf,
        /// The queue.
        queue: String,
        #[command(flatten)]
        out: Output,
    },
    /// Resume a paused queue.
    Resume {
        /// The database: a SQLite file, or a PostgreSQL `postgres://` URL.
        db: PathBuf,
        /// The queue.
        queue: String,
        #[command(flatten)]
        out: Output,
    },
    /// Enqueue a job: a raw JSON payload, or a call of a named job with
    /// JSON arguments (an object: keywords; anything else: one argument).
    Enqueue {
        /// The database: a SQLite file, or a PostgreSQL `postgres://` URL.
        db: PathBuf,
        /// The queue.
        queue: String,
        /// The payload (or the job's arguments), as JSON.
        #[arg(value_name = "JSON")]
        payload: String,
        /// Call the job of this name (a `#[job]`'s name, or a Python
        /// `@task`'s), in the format's task envelope.
        #[arg(long, value_name = "NAME", visible_alias = "task")]
        job: Option<String>,
        /// Run no sooner than this from now (`90s`, `5m`, `1h30m`, `2d`).
        #[arg(long, value_parser = crate::duration::parse)]
        delay: Option<std::time::Duration>,
        /// Higher is claimed first.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i64,
        /// Attempts before the job goes to dead.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        max_attempts: Option<u32>,
        /// Drop the job if not started within this long.
        #[arg(long, value_parser = crate::duration::parse)]
        expires: Option<std::time::Duration>,
        #[command(flatten)]
        out: Output,
    },
    /// Schedules: `honker cron DB list|pause NAME|resume NAME|run-now NAME`,
    /// and `honker cron next EXPR --after UNIX --count N [--zone TZ]`.
    #[command(
        override_usage = "honker cron <DB> <list|pause NAME|resume NAME|run-now NAME> [--json]\n       \
                          honker cron next <EXPR> [--after UNIX] [--count N] [--zone TZ] [--json]"
    )]
    Cron {
        /// `next EXPR ...`, or the database file then the action.
        #[arg(num_args = 1.., required = true, allow_hyphen_values = true,
              trailing_var_arg = true, value_name = "DB|next")]
        args: Vec<String>,
    },
    /// Check a file's health: journal mode, WAL size, the format's tables
    /// and indexes, jobs stuck past their claim, exhausted jobs, clocks.
    /// Exits 1 when a check fails.
    Doctor {
        /// The database: a SQLite file, or a PostgreSQL `postgres://` URL.
        db: PathBuf,
        #[command(flatten)]
        out: Output,
    },
    /// Serve the web dashboard for the file.
    Web {
        /// The database: a SQLite file, or a PostgreSQL `postgres://` URL.
        db: PathBuf,
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Show, never act: no buttons, and actions are refused. The file is
        /// opened read-only.
        #[arg(long)]
        read_only: bool,
        /// Also answer for this host name (`name` or `name:port`); may be
        /// given more than once. On a loopback address the dashboard
        /// answers only for localhost, 127.0.0.1 and `[::1]` otherwise.
        #[arg(long = "allow-host", value_name = "HOST")]
        allow_hosts: Vec<String>,
    },
}

/// A state to list jobs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    /// Due now, in claim order.
    Pending,
    /// Due later, soonest first.
    Scheduled,
    /// Claimed by a worker.
    Running,
    /// In the dead table, newest first.
    Dead,
}

/// What `honker dead` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeadAction {
    /// Put them back to pending, with fresh attempts.
    Retry,
    /// Delete them for good.
    Purge,
}

/// `honker cron DB ...`.
#[derive(Debug, Parser)]
#[command(name = "honker cron", no_binary_name = true)]
pub struct CronOnFile {
    /// The database: a SQLite file, or a PostgreSQL `postgres://` URL.
    pub db: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub action: CronAction,
    #[command(flatten)]
    pub out: Output,
}

/// What `honker cron DB` does.
#[derive(Debug, Subcommand)]
pub enum CronAction {
    /// Every schedule, with its next fire time.
    List,
    /// Pause a schedule.
    Pause {
        /// The schedule's name.
        name: String,
    },
    /// Resume a paused schedule (its misfire policy decides what it missed).
    Resume {
        /// The schedule's name.
        name: String,
    },
    /// Enqueue a schedule's job now, leaving its timetable as it is.
    RunNow {
        /// The schedule's name.
        name: String,
    },
}

/// `honker cron next EXPR ...`.
#[derive(Debug, Parser)]
#[command(name = "honker cron next", no_binary_name = true)]
pub struct CronNext {
    /// The word `next`.
    #[arg(value_parser = ["next"], hide = true)]
    pub next: String,
    /// A 5- or 6-field cron expression, or `@every 5s`.
    pub expr: String,
    /// Boundaries strictly after this unix second (default: now).
    #[arg(long, allow_negative_numbers = true)]
    pub after: Option<i64>,
    /// How many boundaries.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub count: u32,
    /// An IANA time zone for the expression's wall-clock fields (default UTC).
    #[arg(long)]
    pub zone: Option<String>,
    #[command(flatten)]
    pub out: Output,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
        CronOnFile::command().debug_assert();
        CronNext::command().debug_assert();
    }
}
