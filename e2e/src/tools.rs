//! `kubectl` and `helm`, run as the real clients a user runs, against the
//! suite's kubeconfig.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// Why a tool run failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("cannot run `{program}` (is it installed? pass its path with --{program}): {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` did not say which local port it forwards within {waited:?}: {output}")]
    NoForward {
        command: String,
        waited: Duration,
        output: String,
    },
}

/// The clients and the cluster they talk to.
#[derive(Debug, Clone)]
pub struct Tools {
    pub kubectl: PathBuf,
    pub helm: PathBuf,
    pub kubeconfig: PathBuf,
    pub context: Option<String>,
}

impl Tools {
    /// `kubectl` arguments with the suite's kubeconfig and context first.
    pub fn kubectl_args(&self, args: &[&str]) -> Vec<String> {
        self.cluster_args("--context", args)
    }

    /// `helm` arguments with the suite's kubeconfig and context first (helm
    /// names the context flag `--kube-context`).
    pub fn helm_args(&self, args: &[&str]) -> Vec<String> {
        self.cluster_args("--kube-context", args)
    }

    fn cluster_args(&self, context_flag: &str, args: &[&str]) -> Vec<String> {
        let mut out = vec!["--kubeconfig".to_owned(), self.kubeconfig.display().to_string()];
        if let Some(c) = &self.context {
            out.push(context_flag.to_owned());
            out.push(c.clone());
        }
        out.extend(args.iter().map(|s| (*s).to_owned()));
        out
    }

    /// Runs kubectl; its standard output. `stdin` is written to its input.
    pub async fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String, ToolError> {
        run(&self.kubectl, "kubectl", &self.kubectl_args(args), stdin).await
    }

    /// Runs helm; its standard output.
    pub async fn helm(&self, args: &[&str]) -> Result<String, ToolError> {
        run(&self.helm, "helm", &self.helm_args(args), None).await
    }

    /// `kubectl port-forward <target> :<remote>` in `namespace`, kept open
    /// until the returned value is dropped.
    pub async fn port_forward(&self, namespace: &str, target: &str, remote: u16) -> Result<PortForward, ToolError> {
        let args = self.kubectl_args(&[
            "-n",
            namespace,
            "port-forward",
            "--address",
            "127.0.0.1",
            target,
            &format!(":{remote}"),
        ]);
        let command = display(&self.kubectl, &args);
        let mut child = Command::new(&self.kubectl)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ToolError::Spawn {
                program: "kubectl".into(),
                source,
            })?;
        let waited = Duration::from_secs(30);
        let mut seen = String::new();
        let port = match child.stdout.take() {
            Some(stdout) => {
                let mut lines = BufReader::new(stdout).lines();
                let found = tokio::time::timeout(waited, async {
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Some(p) = forwarded_port(&line) {
                            return Some((p, lines));
                        }
                        seen.push_str(&line);
                        seen.push('\n');
                    }
                    None
                })
                .await
                .ok()
                .flatten();
                found.map(|(p, mut lines)| {
                    // Keep reading, so that kubectl never blocks on a full pipe.
                    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                    p
                })
            }
            None => None,
        };
        match port {
            Some(local) => Ok(PortForward { _child: child, local }),
            None => {
                let _ = child.start_kill();
                Err(ToolError::NoForward {
                    command,
                    waited,
                    output: seen,
                })
            }
        }
    }
}

/// A running `kubectl port-forward`.
#[derive(Debug)]
pub struct PortForward {
    _child: Child,
    pub local: u16,
}

impl PortForward {
    /// `http://127.0.0.1:<local>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.local)
    }
}

/// The local port in a `kubectl port-forward` line such as
/// `Forwarding from 127.0.0.1:41234 -> 3200`.
pub fn forwarded_port(line: &str) -> Option<u16> {
    let rest = line.trim().strip_prefix("Forwarding from ")?;
    let (local, _) = rest.split_once(" -> ")?;
    let (_, port) = local.rsplit_once(':')?;
    port.parse().ok()
}

fn display(program: &std::path::Path, args: &[String]) -> String {
    std::iter::once(program.display().to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

async fn run(program: &std::path::Path, name: &str, args: &[String], stdin: Option<&str>) -> Result<String, ToolError> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| ToolError::Spawn {
        program: name.to_owned(),
        source,
    })?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        // A failed write shows up as the command's own error below.
        let _ = input.write_all(text.as_bytes()).await;
        drop(input);
    }
    let out = child.wait_with_output().await.map_err(|source| ToolError::Spawn {
        program: name.to_owned(),
        source,
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(ToolError::Failed {
            command: display(program, args),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(context: Option<&str>) -> Tools {
        Tools {
            kubectl: "kubectl".into(),
            helm: "helm".into(),
            kubeconfig: "/tmp/kc".into(),
            context: context.map(str::to_owned),
        }
    }

    #[test]
    fn forwarded_ports_are_read_from_kubectl_output() {
        assert_eq!(forwarded_port("Forwarding from 127.0.0.1:41234 -> 3200"), Some(41234));
        assert_eq!(forwarded_port("Forwarding from [::1]:5000 -> 4318\n"), Some(5000));
        assert_eq!(forwarded_port("Handling connection for 41234"), None);
        assert_eq!(forwarded_port("Forwarding from 127.0.0.1:x -> 1"), None);
    }

    #[test]
    fn every_call_names_the_kubeconfig_and_context() {
        assert_eq!(
            tools(Some("kind-e2e")).kubectl_args(&["get", "pods"]),
            ["--kubeconfig", "/tmp/kc", "--context", "kind-e2e", "get", "pods"]
        );
        assert_eq!(tools(None).helm_args(&["lint"]), ["--kubeconfig", "/tmp/kc", "lint"]);
        assert_eq!(
            tools(Some("c")).helm_args(&["list"]),
            ["--kubeconfig", "/tmp/kc", "--kube-context", "c", "list"]
        );
    }

    #[tokio::test]
    async fn failures_carry_the_command_and_its_stderr() {
        let t = Tools {
            kubectl: "sh".into(),
            ..tools(None)
        };
        // `sh --kubeconfig ...` fails: sh refuses the option.
        let e = t.kubectl(&["-c", "true"], None).await.unwrap_err();
        let text = e.to_string();
        assert!(text.contains("sh --kubeconfig /tmp/kc -c true"), "{text}");
        let missing = Tools {
            kubectl: "/nonexistent/kubectl".into(),
            ..tools(None)
        };
        let e = missing.kubectl(&["version"], None).await.unwrap_err();
        assert!(e.to_string().contains("--kubectl"), "{e}");
    }

    #[tokio::test]
    async fn standard_input_reaches_the_tool() {
        let dir = std::env::temp_dir().join(format!("signaldb-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("kubectl");
        // A stand-in kubectl that drops the kubeconfig arguments and echoes its input.
        std::fs::write(&fake, "#!/bin/sh\nshift 2\ncat\necho \"args: $*\"\n").unwrap();
        let mut perms = std::fs::metadata(&fake).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&fake, perms).unwrap();
        let t = Tools {
            kubectl: fake,
            ..tools(None)
        };
        // Another test's fork may briefly hold the new file open for writing
        // (ETXTBSY); try again, as a shell would.
        let mut attempts = 0;
        let out = loop {
            match t.kubectl(&["apply", "-f", "-"], Some("kind: List\n")).await {
                Err(ToolError::Spawn { source, .. }) if source.raw_os_error() == Some(26) && attempts < 50 => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                other => break other.unwrap(),
            }
        };
        assert_eq!(out, "kind: List\nargs: apply -f -\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
