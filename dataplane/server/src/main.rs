//! `signaldb`: the SignalDB data plane. See `signaldb --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use signaldb::manage::Manage;
use signaldb::server::{Roles, start};
use signaldb_config::Config;
use tracing::{error, info};

/// jemalloc serves the process's allocations, the C libraries' (zstd,
/// SQLite) included (see the dependency's note).
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts (before `main`); the
/// `MALLOC_CONF` environment variable still overrides them.
/// `oversize_threshold:0`: by default allocations over 8 MiB get an arena
/// that returns their pages at once, so every query faulted its large
/// buffers in again (searches took 60% longer than on glibc).
/// `background_thread:true`, `dirty_decay_ms:1000`, `muzzy_decay_ms:0`:
/// freed pages go back to the system about a second later, also from the
/// arenas of threads that went idle (a compaction's blocking thread): with
/// jemalloc's defaults (ten seconds, purged only when the arena allocates
/// again) a compaction next to ingest held some 75 MiB it had freed, past
/// the process's configured bounds.
#[cfg(target_os = "linux")]
#[allow(unsafe_code, non_upper_case_globals)]
// SAFETY: jemalloc reads this symbol as a `const char *` to a NUL-terminated
// string; a reference to a byte array is one pointer, and the bytes end in NUL.
#[unsafe(export_name = "malloc_conf")]
pub static malloc_conf: &[u8; 81] =
    b"oversize_threshold:0,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// SignalDB: OpenTelemetry in, Parquet on object storage, Grafana Tempo's API out.
///
/// With no command, every role runs in one process on the embedded defaults:
/// a SQLite catalog and Parquet files under ./data.
///
/// Configuration, lowest precedence first: built-in defaults, the YAML file
/// given with --config, SIGNALDB_* environment variables, then flags.
/// Environment variables name a key path with `__` between levels, e.g.
/// SIGNALDB_WRITER__FLUSH_MAX_AGE=5s sets writer.flush_max_age. Every key is
/// described in docs/configuration.md.
#[derive(Debug, Parser)]
#[command(name = "signaldb", version, about, long_about, max_term_width = 100)]
struct Cli {
    /// YAML configuration file.
    #[arg(short, long, env = "SIGNALDB_CONFIG", global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Data directory (WALs, embedded catalog, local Parquet). Key: data_dir.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<String>,

    /// Stable id of this process in the service registry. Key: node_id.
    #[arg(long, global = true, value_name = "ID")]
    node_id: Option<String>,

    /// Catalog: sqlite://PATH or postgres://USER:PASS@HOST:PORT/DB. Key: catalog.url.
    #[arg(long, global = true, value_name = "URL")]
    catalog_url: Option<String>,

    /// Parquet storage: file:///PATH or s3://BUCKET[/PREFIX]. Key: storage.url.
    #[arg(long, global = true, value_name = "URL")]
    storage_url: Option<String>,

    /// OTLP/gRPC listen address. Key: acceptor.grpc_addr.
    #[arg(long, global = true, value_name = "ADDR")]
    otlp_grpc_addr: Option<String>,

    /// OTLP/HTTP listen address. Key: acceptor.http_addr.
    #[arg(long, global = true, value_name = "ADDR")]
    otlp_http_addr: Option<String>,

    /// Writer Flight listen address. Key: writer.flight_addr.
    #[arg(long, global = true, value_name = "ADDR")]
    flight_addr: Option<String>,

    /// Address other services use to reach this writer. Key: writer.advertise_addr.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    advertise_addr: Option<String>,

    /// Querier Flight listen address. Key: querier.flight_addr.
    #[arg(long, global = true, value_name = "ADDR")]
    querier_addr: Option<String>,

    /// Tempo API listen address. Key: router.http_addr.
    #[arg(long, global = true, value_name = "ADDR")]
    http_addr: Option<String>,

    /// Flight SQL listen address. Key: router.flight_sql_addr.
    #[arg(long, global = true, value_name = "ADDR")]
    flight_sql_addr: Option<String>,

    /// Listen address of /metrics, /ready and /live. Key: admin.addr.
    #[arg(long, global = true, value_name = "ADDR")]
    admin_addr: Option<String>,

    /// Sets any configuration key, e.g. --set writer.flush_max_age=5s. Repeatable.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    set: Vec<String>,

    /// Log format.
    #[arg(long, env = "SIGNALDB_LOG_FORMAT", global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every role in one process (the default).
    All,
    /// OTLP intake: gRPC 4317, HTTP 4318; WAL; delivery to writers.
    Acceptor,
    /// Flight 50051: buffering, Parquet flushes, catalog registration.
    Writer,
    /// Flight 50052: queries over Parquet files and writer buffers.
    Querier,
    /// HTTP 3200 (Grafana Tempo API) and Flight SQL 50053.
    Router,
    /// Merges small span files into large ones sorted by trace id, drops
    /// duplicate spans, and deletes replaced and expired objects when due.
    Compactor,
    /// Validates the configuration and prints it, with every default filled in.
    CheckConfig,
    /// Sends OTLP/gRPC load and prints throughput, latency and server memory.
    Loadgen(signaldb::loadgen::LoadgenArgs),
    /// Tenants in the catalog (catalog.url).
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// API keys in the catalog (catalog.url): with tenancy.api_keys on,
    /// clients send `Authorization: Bearer <key>` and act as its tenant.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
enum TenantsCommand {
    /// Records a tenant.
    Create {
        /// Tenant id (what X-Scope-OrgID names).
        tenant: String,
    },
    /// Lists the tenants, one per line.
    List,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Makes an API key and prints it, once: only its hash is stored.
    Create {
        /// The tenant the key acts as (recorded if new).
        #[arg(long)]
        tenant: String,
        /// A label for people, e.g. grafana or otel-collector-eu.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Lists API keys: id, tenant, name, created, revoked.
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revokes an API key by id (the part after `sdb_`, before the secret).
    Revoke {
        /// The key's id, as `keys list` shows it.
        id: String,
    },
}

/// Environment variables that are flags of this binary, not configuration keys.
const NOT_CONFIG_ENV: &[&str] = &["SIGNALDB_CONFIG", "SIGNALDB_LOG_FORMAT", "SIGNALDB_LOG"];

impl Cli {
    fn overrides(&self) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        let flags = [
            ("data_dir", &self.data_dir),
            ("node_id", &self.node_id),
            ("catalog.url", &self.catalog_url),
            ("storage.url", &self.storage_url),
            ("acceptor.grpc_addr", &self.otlp_grpc_addr),
            ("acceptor.http_addr", &self.otlp_http_addr),
            ("writer.flight_addr", &self.flight_addr),
            ("writer.advertise_addr", &self.advertise_addr),
            ("admin.addr", &self.admin_addr),
            ("querier.flight_addr", &self.querier_addr),
            ("router.http_addr", &self.http_addr),
            ("router.flight_sql_addr", &self.flight_sql_addr),
        ];
        for (key, value) in flags {
            if let Some(v) = value {
                out.push((key.to_owned(), v.clone()));
            }
        }
        for s in &self.set {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| format!("--set {s:?}: expected KEY=VALUE"))?;
            out.push((k.trim().to_owned(), v.to_owned()));
        }
        Ok(out)
    }

    fn load_config(&self) -> Result<Config, String> {
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| !NOT_CONFIG_ENV.contains(&k.as_str()))
            .collect();
        let (_, ignored) = signaldb_config::env_overrides(env.clone());
        if !ignored.is_empty() {
            tracing::warn!(variables = ?ignored, "ignoring SIGNALDB_* variables that name no configuration key");
        }
        Config::load(self.config.as_deref(), env, &self.overrides()?).map_err(|e| e.to_string())
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGNALDB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    signaldb::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("signaldb: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let roles = match &cli.command {
        None | Some(Command::All) => Roles::ALL,
        Some(Command::Acceptor) => Roles::ACCEPTOR,
        Some(Command::Writer) => Roles::WRITER,
        Some(Command::Querier) => Roles::QUERIER,
        Some(Command::Router) => Roles::ROUTER,
        Some(Command::Compactor) => Roles::COMPACTOR,
        Some(Command::Loadgen(args)) => {
            return match signaldb::loadgen::run(args.clone()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("signaldb loadgen: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(Command::Tenants(cmd)) => {
            let what = match cmd {
                TenantsCommand::Create { tenant } => Manage::CreateTenant(tenant.clone()),
                TenantsCommand::List => Manage::ListTenants,
            };
            return manage(&cli, what).await;
        }
        Some(Command::Keys(cmd)) => {
            let what = match cmd {
                KeysCommand::Create { tenant, name } => Manage::CreateKey {
                    tenant: tenant.clone(),
                    name: name.clone(),
                },
                KeysCommand::List { tenant } => Manage::ListKeys { tenant: tenant.clone() },
                KeysCommand::Revoke { id } => Manage::RevokeKey(id.clone()),
            };
            return manage(&cli, what).await;
        }
        Some(Command::CheckConfig) => {
            return match cli.load_config().and_then(|c| c.to_yaml().map_err(|e| e.to_string())) {
                Ok(yaml) => {
                    print!("{yaml}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("signaldb: {e}");
                    ExitCode::from(2)
                }
            };
        }
    };
    let config = match cli.load_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("signaldb: {e}");
            return ExitCode::from(2);
        }
    };
    let running = match start(config, roles).await {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "start failed");
            eprintln!("signaldb: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One JSON line on stdout tells scripts and tests where everything listens.
    if let Ok(line) = serde_json::to_string(&running.endpoints) {
        println!("{line}");
    }
    wait_for_signal().await;
    info!("signal received");
    running.shutdown().await;
    ExitCode::SUCCESS
}

/// Runs a `tenants` or `keys` command: its output on stdout, errors on
/// stderr with exit code 1 (2 for a bad configuration).
async fn manage(cli: &Cli, what: Manage) -> ExitCode {
    let config = match cli.load_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("signaldb: {e}");
            return ExitCode::from(2);
        }
    };
    match signaldb::manage::run(&config, what).await {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("signaldb: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
