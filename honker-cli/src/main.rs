//! `honker`: look at and act on a honker job file from the shell.
//!
//! ```text
//! honker stats app.db
//! honker jobs app.db --queue emails --state dead
//! honker dead app.db retry --queue emails
//! honker pause app.db emails
//! honker web app.db --listen 127.0.0.1:8080
//! ```

mod act;
mod cli;
mod doctor;
mod duration;
mod file;
mod look;
mod view;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use cli::{Cli, Command, CronAction, CronNext, CronOnFile};
use honker_actors::core::DeadFilter;
use honker_actors::sqlite::SqliteStore;

/// Why a command failed; every one is printed as one line naming the cause.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the file, through the store.
    #[error(transparent)]
    Store(#[from] honker_actors::Error),
    /// A bad name or expression (checked before the file is opened).
    #[error(transparent)]
    Core(#[from] honker_actors::core::Error),
    /// A bad argument clap could not see.
    #[error("{0}")]
    Usage(String),
    /// What was asked for is not there.
    #[error("{0}")]
    NotFound(String),
    /// Some of what was asked for could not be done (already printed).
    #[error("some of the jobs asked for were not acted on")]
    Partial,
    /// A check failed (already printed).
    #[error("{0}")]
    Failed(String),
    /// JSON output or input.
    #[error("json: {0}")]
    Json(#[source] serde_json::Error),
    /// Arguments of `honker cron`.
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// The dashboard.
    #[error(transparent)]
    Web(#[from] honker_web::Error),
    /// Serving the dashboard.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn main() -> ExitCode {
    // Output piped into `head` ends quietly, as other tools do, not with a
    // panic about a broken pipe.
    // SAFETY: called first, before any thread starts; SIG_DFL is a valid
    // disposition for SIGPIPE.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HONKER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Clap(e)) => e.exit(),
        Err(CliError::Partial) => ExitCode::from(1),
        Err(e) => {
            eprintln!("honker: {}", view::term(&e.to_string(), true));
            ExitCode::from(1)
        }
    }
}

fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Stats { db, out } => look::stats(&db, out),
        Command::Jobs {
            db,
            queue,
            state,
            limit,
            offset,
            search,
            out,
        } => look::jobs(
            &db,
            &queue,
            state,
            look::Page {
                limit,
                offset,
                search: search.as_deref().filter(|s| !s.is_empty()),
            },
            out,
        ),
        Command::Job { db, id, out } => look::job(&db, id, out),
        Command::Dead {
            db,
            action,
            ids,
            queue,
            all,
            error_contains,
            search,
            dry_run,
            out,
        } => {
            let pick = if !ids.is_empty() {
                if error_contains.is_some() || search.is_some() {
                    return Err(CliError::Usage(
                        "--error-contains and --search filter --queue or --all, not a list of ids"
                            .into(),
                    ));
                }
                act::Pick::Ids(ids)
            } else if queue.is_some() || all {
                let mut filter = DeadFilter::default();
                if let Some(q) = &queue {
                    filter = filter.queue(q);
                }
                if let Some(text) = &error_contains {
                    filter = filter.error_contains(text);
                }
                if let Some(text) = search.as_deref().filter(|t| !t.is_empty()) {
                    filter = filter.payload_contains(text);
                }
                act::Pick::Where(filter)
            } else {
                return Err(CliError::Usage(
                    "say which dead jobs: their ids, --queue QUEUE, or --all".into(),
                ));
            };
            act::dead(&db, action, pick, dry_run, out)
        }
        Command::Cancel { db, id, out } => act::cancel(&db, id, out),
        Command::Pause { db, queue, out } => act::pause(&db, &queue, true, out),
        Command::Resume { db, queue, out } => act::pause(&db, &queue, false, out),
        Command::Enqueue {
            db,
            queue,
            payload,
            job,
            delay,
            priority,
            max_attempts,
            expires,
            out,
        } => act::enqueue(
            &db,
            act::NewJob {
                queue: &queue,
                json: &payload,
                job: job.as_deref(),
                delay,
                priority,
                max_attempts,
                expires,
            },
            out,
        ),
        Command::Cron { args } => cron(args),
        Command::Doctor { db, out } => doctor::doctor(&db, out),
        Command::Web {
            db,
            listen,
            read_only,
            allow_hosts,
        } => web(&db, listen, read_only, allow_hosts),
    }
}

fn cron(args: Vec<String>) -> Result<(), CliError> {
    if args.first().map(String::as_str) == Some("next") {
        let n = CronNext::try_parse_from(args)?;
        return look::cron_next(&n.expr, n.after, n.count, n.zone.as_deref(), n.out);
    }
    let c = CronOnFile::try_parse_from(args)?;
    match c.action {
        CronAction::List => look::cron_list(&c.db, c.out),
        CronAction::Pause { name } => act::cron(&c.db, &name, act::CronWrite::Pause, c.out),
        CronAction::Resume { name } => act::cron(&c.db, &name, act::CronWrite::Resume, c.out),
        CronAction::RunNow { name } => act::cron(&c.db, &name, act::CronWrite::RunNow, c.out),
    }
}

/// The host names the dashboard at `addr` answers for (empty: any).
fn host_names(addr: std::net::SocketAddr, extra: &[String]) -> Vec<String> {
    let port = addr.port();
    let has_port = |h: &str| {
        h.rsplit_once(':')
            .is_some_and(|(_, p)| !h.ends_with(']') && p.parse::<u16>().is_ok())
    };
    let mut names: Vec<String> = extra
        .iter()
        .map(|h| {
            if has_port(h) {
                h.clone()
            } else {
                format!("{h}:{port}")
            }
        })
        .collect();
    let ip = addr.ip();
    let mut local = Vec::new();
    if ip.is_loopback() {
        local.extend(["localhost".to_string(), "127.0.0.1".into(), "[::1]".into()]);
    } else if !ip.is_unspecified() {
        local.push(match ip {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        });
    }
    for name in local {
        // A browser leaves out the port it implies (80 for http).
        if port == 80 {
            names.push(name.clone());
        }
        names.push(format!("{name}:{port}"));
    }
    names
}

fn web(
    db: &std::path::Path,
    listen: std::net::SocketAddr,
    read_only: bool,
    allow_hosts: Vec<String>,
) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let dashboard = if let Some(url) = crate::file::server_url(db) {
            let store = honker_actors::postgres::PgStore::open(url)?;
            honker_web::Dashboard::new(honker_actors::Honker::with_store(Arc::new(store)))
                .read_only(read_only)
        } else if read_only {
            honker_web::Dashboard::open_read_only(db)?
        } else {
            // The file must exist: the dashboard never creates one.
            let store =
                SqliteStore::open_existing(db, honker_actors::sqlite::DEFAULT_WATCH_INTERVAL)?;
            honker_web::Dashboard::new(honker_actors::Honker::with_store(Arc::new(store)))
        };
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let hosts = host_names(addr, &allow_hosts);
        if hosts.is_empty() {
            eprintln!(
                "honker: warning: the dashboard answers for any host name and has no login; \
                 pass --allow-host NAME, or put it behind a proxy that authenticates"
            );
        }
        let dashboard = dashboard.allow_hosts(hosts);
        println!(
            "honker dashboard for {} on http://{addr}/{}",
            crate::file::shown(db),
            if read_only { " (read-only)" } else { "" }
        );
        axum::serve(listener, dashboard.router())
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::host_names;

    #[test]
    fn a_loopback_dashboard_answers_for_the_local_names_and_those_allowed() {
        let names = host_names("127.0.0.1:8080".parse().unwrap(), &["ops.example".into()]);
        assert!(names.contains(&"localhost:8080".to_string()));
        assert!(names.contains(&"[::1]:8080".to_string()));
        assert!(names.contains(&"ops.example:8080".to_string()));
        assert!(!names.iter().any(|n| n == "localhost"), "{names:?}");
        let on_80 = host_names("127.0.0.1:80".parse().unwrap(), &[]);
        assert!(
            on_80.contains(&"localhost".to_string()),
            "browsers omit :80"
        );
        assert!(host_names("0.0.0.0:8080".parse().unwrap(), &[]).is_empty());
        let v6 = host_names("[2001:db8::1]:8080".parse().unwrap(), &[]);
        assert_eq!(v6, ["[2001:db8::1]:8080"]);
    }
}
