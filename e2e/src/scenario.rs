//! The end-to-end scenario, in two modes:
//!
//! - **full** (a cluster with nodes, e.g. kind): install the chart, create
//!   `examples/cluster.yaml`, wait for Ready, send OTLP through
//!   `kubectl port-forward`, read every span back through the Tempo API,
//!   scale writers with `kubectl scale` and through the HPA, check that
//!   nothing was lost, delete the cluster and check every child is gone.
//! - **control-plane** (any API server, no kubelet needed): install the chart
//!   without operator pods, run the operator binary locally against the
//!   kubeconfig, and check what the API server alone can show: the CRD's
//!   validation, the children and their owner references, status, and the
//!   scale protocol up to the drain.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::ApiResource;
use serde_json::{Value, json};
use signaldb_operator::apply::api_resource;
use signaldb_operator::build::{Plan, plan};
use signaldb_operator::crd::SignalDBCluster;
use signaldb_operator::names::LABEL_INSTANCE;

use crate::checks::{self, WriterState};
use crate::manifests;
use crate::otlp::{self, SentTrace};
use crate::tools::{ToolError, Tools};
use crate::wait::{self, Patience, Poll, WaitError};

/// Which scenario to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Everything, on a cluster whose nodes can pull (or have) the image.
    Full,
    /// What needs only an API server; the operator runs as a local process.
    ControlPlane,
}

/// Everything the scenario needs to know.
#[derive(Debug, Clone)]
pub struct Options {
    pub tools: Tools,
    pub image: String,
    pub pull_policy: String,
    pub namespace: String,
    pub mode: Mode,
    pub chart: PathBuf,
    pub release: String,
    pub cluster_file: PathBuf,
    pub operator_bin: PathBuf,
    pub timeout: Duration,
    pub keep: bool,
}

/// Why the scenario failed.
#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    Wait(#[from] WaitError),
    #[error("Kubernetes API: cannot {what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{0}")]
    Check(String),
}

type Result<T, E = E2eError> = std::result::Result<T, E>;

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> E2eError {
    let what = what.into();
    move |source| E2eError::Kube {
        what,
        source: Box::new(source),
    }
}

/// Splits `repo[:tag]` (a registry port is not a tag) into repository and tag.
pub fn split_image(image: &str) -> (&str, &str) {
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(i) => (&image[..slash + i], &image[slash + i + 1..]),
        None => (image, "latest"),
    }
}

/// `helm upgrade --install` arguments for the operator chart.
pub fn helm_install_args(o: &Options, operator_replicas: u32, wait: bool) -> Vec<String> {
    let (repo, tag) = split_image(&o.image);
    let mut args: Vec<String> = [
        "upgrade",
        "--install",
        &o.release,
        &o.chart.display().to_string(),
        "--namespace",
        &o.namespace,
        "--set",
        &format!("image.repository={repo}"),
        "--set",
        &format!("image.tag={tag}"),
        "--set",
        &format!("image.pullPolicy={}", o.pull_policy),
        // Namespace-scoped mode: the suite proves the chart's least-privilege Role suffices.
        "--set",
        &format!("watchNamespace={}", o.namespace),
        "--set",
        &format!("replicaCount={operator_replicas}"),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    if wait {
        args.push("--wait".into());
        args.push("--timeout".into());
        args.push(format!("{}s", o.timeout.as_secs()));
    }
    args
}

/// A connection to the API server plus the command-line clients.
struct Env {
    o: Options,
    client: Client,
}

impl Env {
    fn step(&self, what: &str) {
        println!("==> {what}");
    }

    fn patience(&self) -> Patience {
        Patience::new(self.o.timeout)
    }

    fn cluster_api(&self) -> Api<DynamicObject> {
        let ar = ApiResource::erase::<SignalDBCluster>(&());
        Api::namespaced_with(self.client.clone(), &self.o.namespace, &ar)
    }

    async fn cluster(&self, name: &str) -> Result<Option<Value>> {
        let obj = self
            .cluster_api()
            .get_opt(name)
            .await
            .map_err(kube_err(format!("get SignalDBCluster {name}")))?;
        obj.map(|o| serde_json::to_value(o).map_err(|e| E2eError::Check(format!("SignalDBCluster {name}: {e}"))))
            .transpose()
    }

    async fn wait_cluster(&self, name: &str, what: &str, check: impl Fn(&Value) -> Poll<()>) -> Result<Value> {
        let v = wait::until(what, self.patience(), wait::never_fatal, || async {
            Ok::<_, E2eError>(match self.cluster(name).await? {
                Some(v) => match check(&v) {
                    Poll::Done(()) => Poll::Done(v),
                    Poll::NotYet(why) => Poll::NotYet(why),
                },
                None => Poll::NotYet(format!("SignalDBCluster {name} does not exist")),
            })
        })
        .await?;
        Ok(v)
    }

    async fn ensure_namespace(&self) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": { "name": self.o.namespace, "labels": { "signaldb.io/e2e": "true" } }
        }))
        .map_err(|e| E2eError::Check(e.to_string()))?;
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(kube_err(format!("create namespace {}", self.o.namespace))(e)),
        }
    }

    async fn install_chart(&self, operator_replicas: u32, wait: bool) -> Result<()> {
        let args = helm_install_args(&self.o, operator_replicas, wait);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.o.tools.helm(&refs).await?;
        Ok(())
    }

    async fn apply(&self, objects: &[Value], extra: &[&str]) -> Result<String> {
        let body = manifests::as_list(objects).to_string();
        let mut args = vec!["apply", "--server-side", "--field-manager", "signaldb-e2e", "-f", "-"];
        args.extend_from_slice(extra);
        Ok(self.o.tools.kubectl(&args, Some(&body)).await?)
    }

    async fn kubectl(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", self.o.namespace.as_str()];
        all.extend_from_slice(args);
        Ok(self.o.tools.kubectl(&all, None).await?)
    }

    fn cluster_objects(&self) -> Result<Vec<Value>> {
        let text = std::fs::read_to_string(&self.o.cluster_file)
            .map_err(|e| E2eError::Check(format!("cannot read {}: {e}", self.o.cluster_file.display())))?;
        manifests::cluster_manifests(&text, &self.o.namespace, &self.o.image, &self.o.pull_policy)
            .map_err(|e| E2eError::Check(format!("{}: {e}", self.o.cluster_file.display())))
    }

    /// The children the operator must have made for the cluster as it is now.
    async fn expected_children(&self, name: &str) -> Result<Vec<(ApiResource, String)>> {
        let v = self
            .cluster(name)
            .await?
            .ok_or_else(|| E2eError::Check(format!("SignalDBCluster {name} is gone")))?;
        let cluster: SignalDBCluster =
            serde_json::from_value(v).map_err(|e| E2eError::Check(format!("SignalDBCluster {name}: {e}")))?;
        match plan(&cluster).map_err(|e| E2eError::Check(e.to_string()))? {
            Plan::Apply(desired) => Ok(desired.keys().map(|k| (api_resource(k.kind), k.name.clone())).collect()),
            other => Err(E2eError::Check(format!("the operator would apply nothing: {other:?}"))),
        }
    }

    async fn child(&self, ar: &ApiResource, name: &str) -> Result<Option<Value>> {
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &self.o.namespace, ar);
        let obj = api
            .get_opt(name)
            .await
            .map_err(kube_err(format!("get {} {name}", ar.kind)))?;
        obj.map(|o| serde_json::to_value(o).map_err(|e| E2eError::Check(e.to_string())))
            .transpose()
    }

    /// Waits until every child exists, owned by the cluster.
    async fn check_children(&self, name: &str) -> Result<usize> {
        let uid = self
            .cluster(name)
            .await?
            .and_then(|v| v.pointer("/metadata/uid").and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| E2eError::Check(format!("SignalDBCluster {name} has no uid")))?;
        let expected = self.expected_children(name).await?;
        let n = expected.len();
        wait::until(
            "every child, owned by the cluster",
            self.patience(),
            wait::never_fatal,
            || async {
                let mut problems = Vec::new();
                for (ar, child) in &expected {
                    match self.child(ar, child).await? {
                        None => problems.push(format!("{} {child} missing", ar.kind)),
                        Some(mut v) => {
                            v["kind"] = json!(ar.kind);
                            problems.extend(checks::ownership_problem(&v, &uid));
                        }
                    }
                }
                Ok::<_, E2eError>(if problems.is_empty() {
                    Poll::Done(())
                } else {
                    Poll::NotYet(problems.join("; "))
                })
            },
        )
        .await?;
        Ok(n)
    }

    async fn writer_replicas(&self, cluster: &str) -> Result<Option<i64>> {
        let ar = api_resource(signaldb_operator::build::Kind::StatefulSet);
        Ok(self
            .child(&ar, &format!("{cluster}-writer"))
            .await?
            .and_then(|v| v.pointer("/spec/replicas").and_then(Value::as_i64)))
    }

    async fn run_operator(&self) -> Result<tokio::process::Child> {
        let mut cmd = tokio::process::Command::new(&self.o.operator_bin);
        cmd.args([
            "run",
            "--leader-election=false",
            "--namespace",
            &self.o.namespace,
            "--http-addr",
            "127.0.0.1:0",
            "--drain-poll-interval",
            "1s",
        ])
        .env("KUBECONFIG", &self.o.tools.kubeconfig)
        .kill_on_drop(true);
        cmd.spawn().map_err(|e| {
            E2eError::Check(format!(
                "cannot start the operator {} (build it with `cargo build -p signaldb-operator`, or pass --operator-bin): {e}",
                self.o.operator_bin.display()
            ))
        })
    }

    async fn cleanup(&self) {
        if self.o.keep {
            println!("--keep: leaving namespace {} as it is", self.o.namespace);
            return;
        }
        self.step("clean up: uninstall the chart and delete the namespace");
        let _ = self
            .o
            .tools
            .helm(&["uninstall", &self.o.release, "--namespace", &self.o.namespace])
            .await;
        let _ = self
            .o
            .tools
            .kubectl(&["delete", "namespace", &self.o.namespace, "--wait=false"], None)
            .await;
    }
}

/// Sends OTLP/HTTP JSON and reads traces back through the Tempo API.
struct Traffic {
    http: reqwest::Client,
    otlp: String,
    tempo: String,
    run: u64,
    batches: u32,
    sent: Vec<SentTrace>,
}

impl Traffic {
    async fn send(&mut self, batches: u32) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        for _ in 0..batches {
            self.batches += 1;
            let (body, sent) = otlp::batch(self.run, self.batches, 5, 4, now);
            let resp = self
                .http
                .post(format!("{}/v1/traces", self.otlp))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .map_err(|e| E2eError::Check(format!("OTLP export to {}: {e}", self.otlp)))?;
            let status = resp.status();
            if !status.is_success() {
                let text = resp.text().await.unwrap_or_default();
                return Err(E2eError::Check(format!("OTLP export refused with {status}: {text}")));
            }
            self.sent.extend(sent);
        }
        Ok(())
    }

    /// Every span sent so far is readable by trace id; waits for freshness.
    async fn read_all(&self, patience: Patience, what: &str) -> Result<()> {
        wait::until(
            what,
            patience.every(Duration::from_secs(1)),
            wait::never_fatal,
            || async {
                let mut missing = Vec::new();
                for t in &self.sent {
                    let got = self.trace(&t.trace_id).await?;
                    let lost = checks::missing(&t.span_ids, &got);
                    if !lost.is_empty() {
                        missing.push(format!(
                            "trace {}: {} of {} spans",
                            t.trace_id,
                            lost.len(),
                            t.span_ids.len()
                        ));
                    }
                }
                Ok::<_, E2eError>(if missing.is_empty() {
                    Poll::Done(())
                } else {
                    Poll::NotYet(format!("{} traces incomplete, e.g. {}", missing.len(), missing[0]))
                })
            },
        )
        .await?;
        let spans: usize = self.sent.iter().map(|t| t.span_ids.len()).sum();
        println!("    all {spans} spans of {} traces read back", self.sent.len());
        Ok(())
    }

    async fn trace(&self, id: &str) -> Result<BTreeSet<String>> {
        let resp = self
            .http
            .get(format!("{}/api/traces/{id}", self.tempo))
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| E2eError::Check(format!("Tempo API at {}: {e}", self.tempo)))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(BTreeSet::new());
        }
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| E2eError::Check(format!("Tempo API body: {e}")))?;
        if !status.is_success() {
            return Err(E2eError::Check(format!(
                "trace {id}: {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        otlp::span_ids(&body).map_err(|e| E2eError::Check(format!("trace {id}: {e}")))
    }
}

/// Runs the scenario of `o.mode`; cleans up (unless `keep`) either way.
pub async fn run(o: Options) -> Result<()> {
    let client = connect(&o.tools).await?;
    let env = Env { o, client };
    env.step(&format!("namespace {}", env.o.namespace));
    env.ensure_namespace().await?;
    let result = match env.o.mode {
        Mode::Full => full(&env).await,
        Mode::ControlPlane => control_plane(&env).await,
    };
    if let Err(e) = &result {
        println!("FAILED: {e}");
    }
    env.cleanup().await;
    result
}

async fn connect(tools: &Tools) -> Result<Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(&tools.kubeconfig)
        .map_err(|e| E2eError::Check(format!("cannot read kubeconfig {}: {e}", tools.kubeconfig.display())))?;
    let options = kube::config::KubeConfigOptions {
        context: tools.context.clone(),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| E2eError::Check(format!("kubeconfig {}: {e}", tools.kubeconfig.display())))?;
    Client::try_from(config).map_err(kube_err("build a client"))
}

async fn full(env: &Env) -> Result<()> {
    env.step("install the operator chart and wait for its Deployment");
    env.install_chart(1, true).await?;

    let objects = env.cluster_objects()?;
    let cluster = manifests::the_cluster(&objects)
        .and_then(|c| c.pointer("/metadata/name"))
        .and_then(Value::as_str)
        .ok_or_else(|| E2eError::Check("the cluster file names no SignalDBCluster".into()))?
        .to_owned();
    env.step(&format!("apply {} and wait for Ready", env.o.cluster_file.display()));
    env.apply(&objects, &[]).await?;
    env.wait_cluster(&cluster, "the cluster to be Ready", checks::ready)
        .await?;
    let children = env.check_children(&cluster).await?;
    println!("    {children} children, each owned by the cluster");

    env.step("send OTLP/HTTP through a port-forward and read it back through the Tempo API");
    let acceptor = env
        .o
        .tools
        .port_forward(&env.o.namespace, &format!("svc/{cluster}-acceptor"), 4318)
        .await?;
    let router = env
        .o
        .tools
        .port_forward(&env.o.namespace, &format!("svc/{cluster}-router"), 3200)
        .await?;
    let mut traffic = Traffic {
        http: reqwest::Client::new(),
        otlp: acceptor.base_url(),
        tempo: router.base_url(),
        run: rand::random(),
        batches: 0,
        sent: Vec::new(),
    };
    traffic.send(10).await?;
    traffic
        .read_all(env.patience(), "every span sent to be readable")
        .await?;

    for (n, how) in [(2, "up"), (1, "down")] {
        env.step(&format!("kubectl scale writers {how} to {n}"));
        env.kubectl(&["scale", &format!("sdb/{cluster}"), &format!("--replicas={n}")])
            .await?;
        traffic.send(5).await?;
        env.wait_cluster(&cluster, &format!("{n} writers, settled"), |v| {
            checks::writers_settled(v, n)
        })
        .await?;
        traffic.send(5).await?;
        traffic
            .read_all(env.patience(), &format!("nothing lost after scaling {how}"))
            .await?;
    }

    env.step("scale writers through the HPA: minReplicas 2 raises them, maxReplicas 1 drains one");
    for (min, max, n) in [(2, 3, 2), (1, 1, 1)] {
        let patch = manifests::autoscaling_patch(min, max).to_string();
        env.kubectl(&["patch", &format!("sdb/{cluster}"), "--type", "merge", "-p", &patch])
            .await?;
        env.wait_cluster(&cluster, &format!("the HPA to settle writers at {n}"), |v| {
            checks::writers_settled(v, n)
        })
        .await?;
        traffic.send(5).await?;
        traffic
            .read_all(env.patience(), &format!("nothing lost with the HPA at {n}"))
            .await?;
    }
    let hpa = env
        .child(
            &api_resource(signaldb_operator::build::Kind::HorizontalPodAutoscaler),
            &format!("{cluster}-writer"),
        )
        .await?
        .ok_or_else(|| E2eError::Check("autoscaling is on but there is no writer HPA".into()))?;
    if hpa.pointer("/spec/scaleTargetRef/kind").and_then(Value::as_str) != Some(manifests::CLUSTER_KIND) {
        return Err(E2eError::Check(format!(
            "the writer HPA scales {:?}, not the SignalDBCluster",
            hpa.pointer("/spec/scaleTargetRef")
        )));
    }
    env.kubectl(&[
        "patch",
        &format!("sdb/{cluster}"),
        "--type",
        "merge",
        "-p",
        &manifests::no_autoscaling_patch().to_string(),
    ])
    .await?;
    drop((acceptor, router));

    delete_and_check_gone(env, &cluster).await
}

async fn delete_and_check_gone(env: &Env, cluster: &str) -> Result<()> {
    env.step("delete the cluster and check every child is gone");
    let expected = env.expected_children(cluster).await?;
    env.kubectl(&[
        "delete",
        &format!("sdb/{cluster}"),
        "--cascade=foreground",
        "--wait=true",
        &format!("--timeout={}s", env.o.timeout.as_secs()),
    ])
    .await?;
    wait::until(
        "every child to be deleted",
        env.patience(),
        wait::never_fatal,
        || async {
            let mut left = Vec::new();
            for (ar, name) in &expected {
                if env.child(ar, name).await?.is_some() {
                    left.push(format!("{} {name}", ar.kind));
                }
            }
            Ok::<_, E2eError>(if left.is_empty() {
                Poll::Done(())
            } else {
                Poll::NotYet(left.join(", "))
            })
        },
    )
    .await?;
    let claims = env
        .kubectl(&["get", "pvc", "-l", &format!("{LABEL_INSTANCE}={cluster}"), "-o", "name"])
        .await?;
    println!(
        "    children gone; WAL claims kept on purpose (Retain): {}",
        claims.lines().count()
    );
    Ok(())
}

async fn control_plane(env: &Env) -> Result<()> {
    env.step("install the chart with no operator pods (the API server accepts every object)");
    env.install_chart(0, false).await?;
    env.step("run the operator locally against the kubeconfig");
    let mut operator = env.run_operator().await?;

    let result = control_plane_steps(env).await;
    let _ = operator.start_kill();
    let _ = operator.wait().await;
    result
}

async fn control_plane_steps(env: &Env) -> Result<()> {
    let objects = env.cluster_objects()?;
    let base = manifests::the_cluster(&objects)
        .cloned()
        .ok_or_else(|| E2eError::Check("the cluster file names no SignalDBCluster".into()))?;
    let cluster = base
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("demo")
        .to_owned();

    env.step("the API server refuses invalid clusters (CRD schema and CEL rules)");
    for case in manifests::invalid_clusters(&base) {
        match env
            .apply(
                std::slice::from_ref(&case.object),
                &["--dry-run=server", "--validate=strict"],
            )
            .await
        {
            Ok(out) => {
                return Err(E2eError::Check(format!(
                    "the API server accepted the invalid cluster `{}`: {out}",
                    case.name
                )));
            }
            Err(E2eError::Tool(ToolError::Failed { stderr, .. })) if stderr.contains(case.error_contains) => {
                println!("    {}: refused", case.name);
            }
            Err(e) => {
                return Err(E2eError::Check(format!(
                    "invalid cluster `{}` was refused, but not for `{}`: {e}",
                    case.name, case.error_contains
                )));
            }
        }
    }

    env.step("apply the cluster; the operator creates every child and reports status");
    env.apply(&objects, &[]).await?;
    let status = env
        .wait_cluster(&cluster, "the operator to observe the cluster", checks::observed)
        .await?;
    if checks::condition(&status, "Degraded").is_some_and(|c| c.0 == "True") {
        return Err(E2eError::Check(format!(
            "the cluster is Degraded: {:?}",
            checks::condition(&status, "Degraded")
        )));
    }
    let children = env.check_children(&cluster).await?;
    println!("    {children} children, each owned by the cluster");

    env.step("kubectl scale to 3 writers grows the StatefulSet through /scale");
    env.kubectl(&["scale", &format!("sdb/{cluster}"), "--replicas=3"])
        .await?;
    wait_writer_sts(env, &cluster, 3).await?;
    env.wait_cluster(&cluster, "status.writer.replicas to be 3", |v| {
        let w = checks::writer_state(v);
        if w.replicas == 3 {
            Poll::Done(())
        } else {
            Poll::NotYet(format!("{w:?}"))
        }
    })
    .await?;

    env.step("kubectl scale to 1 records a drain of writers 2 and 1 and keeps the StatefulSet at 3");
    env.kubectl(&["scale", &format!("sdb/{cluster}"), "--replicas=1"])
        .await?;
    let draining = env
        .wait_cluster(&cluster, "a recorded scale-down", |v| {
            let w: WriterState = checks::writer_state(v);
            if w.scale_down.is_some() {
                Poll::Done(())
            } else {
                Poll::NotYet(format!("{w:?}"))
            }
        })
        .await?;
    // The leaving writers are recorded by ordinal when the scale-down
    // starts, whether or not they can be reached (in control-plane mode
    // their pods never get an IP, and the drain requests keep failing).
    let w = checks::writer_state(&draining);
    let mut leaving = w.draining.clone();
    leaving.sort();
    let expected = vec![1, 2];
    if leaving != expected || w.replicas != 3 {
        return Err(E2eError::Check(format!(
            "scale-down should drain {expected:?} with 3 writers kept; status says {w:?}"
        )));
    }
    // With no pods to drain, the StatefulSet must not shrink.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sts = env.writer_replicas(&cluster).await?;
    if sts != Some(3) {
        return Err(E2eError::Check(format!(
            "the writer StatefulSet shrank to {sts:?} before its writers drained"
        )));
    }

    env.step("kubectl scale back to 3 cancels the scale-down");
    env.kubectl(&["scale", &format!("sdb/{cluster}"), "--replicas=3"])
        .await?;
    env.wait_cluster(&cluster, "the scale-down to be cancelled", |v| {
        let w = checks::writer_state(v);
        if w.scale_down.is_none() && w.spec_replicas == 3 {
            Poll::Done(())
        } else {
            Poll::NotYet(format!("{w:?}"))
        }
    })
    .await?;
    wait_writer_sts(env, &cluster, 3).await?;

    env.step("delete the cluster");
    env.kubectl(&["delete", &format!("sdb/{cluster}"), "--wait=false"])
        .await?;
    wait::until(
        "the cluster to be deleted",
        env.patience(),
        wait::never_fatal,
        || async {
            Ok::<_, E2eError>(match env.cluster(&cluster).await? {
                None => Poll::Done(()),
                Some(v) => Poll::NotYet(format!(
                    "still there, finalizers {:?}",
                    v.pointer("/metadata/finalizers")
                )),
            })
        },
    )
    .await?;
    Ok(())
}

async fn wait_writer_sts(env: &Env, cluster: &str, n: i64) -> Result<()> {
    wait::until(
        &format!("the writer StatefulSet to have {n} replicas"),
        env.patience(),
        wait::never_fatal,
        || async {
            Ok::<_, E2eError>(match env.writer_replicas(cluster).await? {
                Some(r) if r == n => Poll::Done(()),
                other => Poll::NotYet(format!("replicas {other:?}")),
            })
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(image: &str) -> Options {
        Options {
            tools: Tools {
                kubectl: "kubectl".into(),
                helm: "helm".into(),
                kubeconfig: "/kc".into(),
                context: None,
            },
            image: image.into(),
            pull_policy: "IfNotPresent".into(),
            namespace: "e2e".into(),
            mode: Mode::Full,
            chart: "charts/signaldb-operator".into(),
            release: "signaldb-operator".into(),
            cluster_file: "examples/cluster.yaml".into(),
            operator_bin: "target/debug/signaldb-operator".into(),
            timeout: Duration::from_secs(600),
            keep: false,
        }
    }

    #[test]
    fn images_split_into_repository_and_tag() {
        assert_eq!(split_image("signaldb:e2e"), ("signaldb", "e2e"));
        assert_eq!(
            split_image("localhost:5000/signaldb:1.2"),
            ("localhost:5000/signaldb", "1.2")
        );
        assert_eq!(
            split_image("localhost:5000/signaldb"),
            ("localhost:5000/signaldb", "latest")
        );
        assert_eq!(split_image("signaldb"), ("signaldb", "latest"));
    }

    #[test]
    fn the_chart_is_installed_namespace_scoped_with_the_image() {
        let args = helm_install_args(&options("reg:5000/x/signaldb:e2e"), 1, true);
        let joined = args.join(" ");
        assert!(joined.starts_with("upgrade --install signaldb-operator charts/signaldb-operator --namespace e2e"));
        assert!(joined.contains("--set image.repository=reg:5000/x/signaldb --set image.tag=e2e"));
        assert!(joined.contains("--set watchNamespace=e2e"));
        assert!(joined.contains("--set replicaCount=1"));
        assert!(joined.ends_with("--wait --timeout 600s"));
        let cp = helm_install_args(&options("s:1"), 0, false).join(" ");
        assert!(cp.contains("replicaCount=0") && !cp.contains("--wait"));
    }
}
