use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// OpenTelemetry traces and logs (OTLP) into Delta Lake tables.
#[derive(Parser)]
#[command(name = "otel-delta", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines on stderr as `text` (for people) or `json` (one object a line, for log pipelines).
    #[arg(long, global = true, env = "OTEL_DELTA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Receive OTLP traces and logs and commit them to their Delta tables.
    Serve(Box<otel_delta::ServeArgs>),
    /// Compact the small files of every signal's table, or of --signal's (safe while collectors append).
    Optimize(otel_delta::OptimizeArgs),
    /// Delete files a table no longer references, older than the retention (every signal's table, or --signal's).
    Vacuum(otel_delta::VacuumArgs),
}

/// Exit 1 with the error and its causes on one line of stderr (no backtrace, whatever RUST_BACKTRACE says: these
/// are configuration and start-up errors, not bugs).
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("otel-delta: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and each of its causes once (many messages already quote their source), joined by `: `.
fn one_line(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

fn run() -> anyhow::Result<()> {
    disable_transparent_huge_pages();
    raise_open_files_limit();
    let cli = Cli::parse();
    // The Delta libraries log every snapshot and commit at info: only their warnings unless RUST_LOG asks. The
    // kernel logs a missing table (one we are about to create) as an ERROR; we report what matters of it ourselves.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        "info,buoyant_kernel=warn,buoyant_kernel::snapshot=off,delta_kernel=warn,deltalake_core=warn".into()
    });
    // Logs on stderr: stdout carries only the start-up lines (table, addresses) scripts read.
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match cli.log_format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).with_span_list(false).boxed(),
    };
    // The filter is the log output's own: the store retry counter sees its events whatever RUST_LOG says.
    tracing_subscriber::registry().with(logs.with_filter(filter)).with(otel_delta::StoreRetries::layer()).init();
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Optimize(args) => optimize(args),
        Command::Vacuum(args) => vacuum(args),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("otel-delta-io")
        .build()
        .context("starting the tokio runtime")
}

/// Open a maintained table: `None` (and a line saying so) when a signal's table was never made and need not be.
async fn open_maintained(command: &str, table: &otel_delta::Maintained) -> anyhow::Result<Option<otel_delta::Table>> {
    let location = &table.location;
    match otel_delta::Table::open(&location.url, location.storage_options.clone()).await {
        Ok(opened) => Ok(Some(opened)),
        Err(e) if e.is_no_table() && !table.must_exist => {
            println!("otel-delta: {command} {}: no {} table there, skipped", location.url, table.signal.name());
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn optimize(args: otel_delta::OptimizeArgs) -> anyhow::Result<()> {
    let tables = args.tables().context("invalid configuration")?;
    let options = otel_delta::OptimizeOptions {
        target_file_size: args.target_size,
        codec: args.compression,
        ..Default::default()
    };
    runtime()?.block_on(async {
        for maintained in &tables {
            let Some(mut table) = open_maintained("optimize", maintained).await? else { continue };
            let report = otel_delta::optimize(&mut table, &options).await?;
            println!("otel-delta: optimize {}: {report}", maintained.location.url);
            table.finish().await;
        }
        Ok(())
    })
}

fn vacuum(args: otel_delta::VacuumArgs) -> anyhow::Result<()> {
    let tables = args.tables().context("invalid configuration")?;
    runtime()?.block_on(async {
        for maintained in &tables {
            let Some(table) = open_maintained("vacuum", maintained).await? else { continue };
            let report = otel_delta::vacuum(&table, args.retention, args.dry_run, args.allow_short_retention).await?;
            let verb = if report.dry_run { "would delete" } else { "deleted" };
            for file in &report.files {
                println!("otel-delta: vacuum {verb} {file}");
            }
            println!("otel-delta: vacuum {} {verb} {} file(s)", maintained.location.url, report.files.len());
        }
        Ok(())
    })
}

fn serve(args: otel_delta::ServeArgs) -> anyhow::Result<()> {
    let mut config = args.resolve().context("invalid configuration")?;
    config.on_worker_idle(release_free_memory);
    let (http_addr, grpc_addr, metrics_addr) = (config.http_addr(), config.grpc_addr(), config.metrics_addr());
    let scheme = config.otlp_scheme();
    runtime()?.block_on(async {
        let collector = otel_delta::Collector::open(config).await.context("opening the tables")?;
        let http = tokio::net::TcpListener::bind(http_addr)
            .await
            .with_context(|| format!("binding OTLP/HTTP on {http_addr}"))?;
        let metrics = match metrics_addr {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the metrics listener (--metrics-addr) on {addr}"))?,
            ),
            None => None,
        };
        println!("otel-delta: {collector}");
        println!("otel-delta: OTLP/HTTP on {scheme}://{}/v1/traces", http.local_addr()?);
        let mut listeners = vec![http];
        if let Some(addr) = grpc_addr {
            let grpc =
                tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding OTLP/gRPC on {addr}"))?;
            println!("otel-delta: OTLP/gRPC on {scheme}://{}", grpc.local_addr()?);
            listeners.push(grpc);
        }
        if let Some(metrics) = &metrics {
            // Last: scripts read the lines above by position.
            println!("otel-delta: metrics on http://{}/metrics", metrics.local_addr()?);
        }
        let collector = match metrics {
            Some(metrics) => collector.with_metrics_listener(metrics),
            None => collector,
        };
        collector.serve(listeners, shutdown_signal()).await.context("serving")?;
        println!("otel-delta: stopped after committing every accepted record");
        Ok(())
    })
}

/// Return this thread's freed memory to the OS. mimalloc purges freed pages lazily, on later allocator activity of
/// the owning thread, which an idle worker never has: without this, the RSS stays at the peak after a burst.
fn release_free_memory() {
    // SAFETY: mi_collect only walks the calling thread's heap and the allocator's own caches; it takes no pointers.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// Transparent huge pages off for this process. mimalloc asks for them on its arenas (`MADV_HUGEPAGE`), and the
/// batch builders' memory, freed and refaulted each flush, then costs a 2 MiB zeroing per fault
/// (`docs/design-notes.md#transparent-huge-pages`).
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only; failure (an old kernel) leaves THP as it was.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// The open-files soft limit up to the hard limit: every connection and every file being uploaded holds a
/// descriptor, and the usual soft limit (1024) is below `--max-connections`.
fn raise_open_files_limit() {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed by reference.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
                limit.rlim_cur = limit.rlim_max;
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    tracing::warn!("could not raise the open-files limit");
                }
            }
        }
    }
}

/// SIGTERM or Ctrl-C. A second one exits at once (exit code 130), whatever is still being stored.
async fn shutdown_signal() {
    signal().await;
    tracing::info!("shutting down: committing accepted records (a second signal exits at once)");
    tokio::spawn(async {
        signal().await;
        eprintln!("otel-delta: second signal: exiting without waiting for the commit of accepted records");
        std::process::exit(130);
    });
}

/// The next SIGTERM or Ctrl-C.
async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
