//! `signaldb-e2e`: the end-to-end suite. See `e2e/README.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use signaldb_e2e::scenario::{self, Mode, Options};
use signaldb_e2e::tools::Tools;

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (write e.g. 90s, 10m)"))
}

/// Runs SignalDB's end-to-end scenario against a Kubernetes cluster.
#[derive(Debug, Parser)]
#[command(name = "signaldb-e2e", version)]
struct Cli {
    /// Kubeconfig of the cluster to test.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Context in the kubeconfig (default: its current context).
    #[arg(long)]
    context: Option<String>,
    /// Image with `signaldb` and `signaldb-operator` (e.g. `signaldb:e2e`,
    /// loaded into kind by `e2e/kind/run.sh`).
    #[arg(long)]
    image: String,
    /// Pull policy for that image (`Never` or `IfNotPresent` for images
    /// loaded into the nodes).
    #[arg(long, default_value = "IfNotPresent")]
    pull_policy: String,
    /// Namespace for the chart and the cluster; created, and deleted at the
    /// end unless --keep.
    #[arg(long, default_value = "signaldb-e2e")]
    namespace: String,
    /// `full` needs nodes that run the image; `control-plane` needs only an
    /// API server (the operator runs locally from --operator-bin).
    #[arg(long, value_enum, default_value = "full")]
    mode: Mode,
    /// The operator's Helm chart.
    #[arg(long, default_value = "charts/signaldb-operator")]
    chart: PathBuf,
    /// Helm release name.
    #[arg(long, default_value = "signaldb-operator")]
    release: String,
    /// The cluster to create.
    #[arg(long, default_value = "examples/cluster.yaml")]
    cluster_file: PathBuf,
    /// `helm` binary.
    #[arg(long, default_value = "helm")]
    helm: PathBuf,
    /// `kubectl` binary.
    #[arg(long, default_value = "kubectl")]
    kubectl: PathBuf,
    /// The operator binary run locally in control-plane mode.
    #[arg(long, default_value = "target/debug/signaldb-operator")]
    operator_bin: PathBuf,
    /// How long any one wait may take.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    timeout: Duration,
    /// Leave the namespace and release in place at the end.
    #[arg(long)]
    keep: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    signaldb_operator::run::install_crypto_provider();
    let options = Options {
        tools: Tools {
            kubectl: cli.kubectl,
            helm: cli.helm,
            kubeconfig: cli.kubeconfig,
            context: cli.context,
        },
        image: cli.image,
        pull_policy: cli.pull_policy,
        namespace: cli.namespace,
        mode: cli.mode,
        chart: cli.chart,
        release: cli.release,
        cluster_file: cli.cluster_file,
        operator_bin: cli.operator_bin,
        timeout: cli.timeout,
        keep: cli.keep,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("signaldb-e2e: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(scenario::run(options)) {
        Ok(()) => {
            println!("PASSED");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("signaldb-e2e: {e}");
            ExitCode::FAILURE
        }
    }
}
