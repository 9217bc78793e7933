#!/usr/bin/env bash
# Runs the SignalDB end-to-end suite on a kind cluster, from nothing:
#
#   1. checks that docker, kind, kubectl, helm and cargo are installed;
#   2. builds the SignalDB image (Dockerfile at the repository root);
#   3. creates the kind cluster from e2e/kind/kind-config.yaml, unless a
#      cluster of that name exists already;
#   4. loads the image into the cluster's nodes;
#      (control-plane mode runs no SignalDB pods and skips 2 and 4)
#   5. runs the suite (`cargo run -p signaldb-e2e`) against the cluster;
#   6. on failure, saves the cluster's state and every pod's logs;
#   7. deletes the cluster (see KEEP_CLUSTER).
#
# Usage (from any directory):
#
#   e2e/kind/run.sh [more signaldb-e2e arguments, e.g. --timeout 20m --keep]
#
# Environment:
#
#   KIND_CLUSTER     name of the kind cluster (default: signaldb-e2e)
#   KIND_NODE_IMAGE  node image for a new cluster (default: kind's own)
#   IMAGE            tag of the image built and loaded (default: signaldb:e2e)
#   MODE             full | control-plane (default: full); control-plane runs
#                    the operator as a local process from --operator-bin
#                    (default target/debug/signaldb-operator: build it first)
#   SKIP_BUILD=1     do not build; load the existing local image $IMAGE
#   KEEP_CLUSTER     1: keep the cluster afterwards; 0: always delete it;
#                    unset: delete it only if this run created it
#   E2E_LOG_DIR      where the suite's output (e2e.log) and, after a failure,
#                    the cluster's state and logs go
#                    (default: target/e2e-logs in the repository)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"

KIND_CLUSTER="${KIND_CLUSTER:-signaldb-e2e}"
IMAGE="${IMAGE:-signaldb:e2e}"
MODE="${MODE:-full}"
KEEP_CLUSTER="${KEEP_CLUSTER:-}"
LOG_DIR="${E2E_LOG_DIR:-$REPO_ROOT/target/e2e-logs}"
KIND_CONFIG="$REPO_ROOT/e2e/kind/kind-config.yaml"
ORIG_KUBECONFIG="${KUBECONFIG:-}"

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# --- Preconditions ----------------------------------------------------------

missing=()
for tool in docker kind kubectl helm cargo; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        missing+=("$tool")
    fi
done
if ((${#missing[@]} > 0)); then
    die "missing on PATH: ${missing[*]}. The e2e run needs docker (image build and kind's nodes), kind, kubectl, helm and cargo (Rust 1.95)."
fi
if ! docker info >/dev/null 2>&1; then
    die "docker is installed, but its daemon does not answer (is it running, and may this user use it?)"
fi
case "$MODE" in
    full | control-plane) ;;
    *) die "MODE must be full or control-plane, not '$MODE'" ;;
esac
case "$KEEP_CLUSTER" in
    "" | 0 | 1) ;;
    *) die "KEEP_CLUSTER must be 1, 0 or unset, not '$KEEP_CLUSTER'" ;;
esac

# --- Teardown ---------------------------------------------------------------

created_cluster=0
kubeconfig="$(mktemp "${TMPDIR:-/tmp}/signaldb-e2e-kubeconfig.XXXXXX")"

cluster_exists() {
    kind get clusters 2>/dev/null | grep -qxF "$KIND_CLUSTER"
}

# After a failure: what the cluster looked like, and every pod's logs.
dump_diagnostics() {
    local dir="$LOG_DIR/cluster"
    local k=(kubectl --kubeconfig "$kubeconfig" --request-timeout=30s)
    log "the run failed; saving the cluster's state and logs under $dir"
    mkdir -p "$dir/pods"
    "${k[@]}" get nodes -o wide >"$dir/nodes.txt" 2>&1
    "${k[@]}" get signaldbclusters -A -o yaml >"$dir/signaldbclusters.yaml" 2>&1
    "${k[@]}" get all,pvc,pv,hpa,pdb,configmaps,leases -A -o wide >"$dir/resources.txt" 2>&1
    "${k[@]}" get events -A --sort-by=.lastTimestamp >"$dir/events.txt" 2>&1
    local ns pod
    while read -r ns pod; do
        [[ -n "$ns" && -n "$pod" ]] || continue
        "${k[@]}" -n "$ns" describe pod "$pod" >"$dir/pods/$ns.$pod.describe.txt" 2>&1
        "${k[@]}" -n "$ns" logs "$pod" --all-containers --prefix --timestamps >"$dir/pods/$ns.$pod.log" 2>&1
        if ! "${k[@]}" -n "$ns" logs "$pod" --all-containers --prefix --timestamps --previous \
            >"$dir/pods/$ns.$pod.previous.log" 2>/dev/null; then
            rm -f "$dir/pods/$ns.$pod.previous.log"
        fi
    done < <("${k[@]}" get pods -A --no-headers \
        -o custom-columns=NAMESPACE:.metadata.namespace,NAME:.metadata.name 2>/dev/null \
        | grep -Ev '^(kube-system|local-path-storage)[[:space:]]')
    # Node-level logs (kubelet, containerd, every container) as kind sees them.
    kind export logs "$LOG_DIR/kind" --name "$KIND_CLUSTER" >/dev/null 2>&1
    # A summary for whoever reads the console (a CI log, say).
    "${k[@]}" get signaldbclusters,pods -A -o wide >&2
}

cleanup() {
    local rc=$?
    set +e
    if ((rc != 0)) && [[ -s "$kubeconfig" ]]; then
        dump_diagnostics
    fi
    local delete=0
    case "$KEEP_CLUSTER" in
        1) delete=0 ;;
        0) delete=1 ;;
        *) delete=$created_cluster ;;
    esac
    if ((delete == 1)) && cluster_exists; then
        log "deleting kind cluster $KIND_CLUSTER"
        if ((created_cluster == 1)); then
            # Created with --kubeconfig: its entries live in that file only.
            kind delete cluster --name "$KIND_CLUSTER" --kubeconfig "$kubeconfig"
        elif [[ -n "$ORIG_KUBECONFIG" ]]; then
            KUBECONFIG="$ORIG_KUBECONFIG" kind delete cluster --name "$KIND_CLUSTER"
        else
            env -u KUBECONFIG kind delete cluster --name "$KIND_CLUSTER"
        fi
        rm -f "$kubeconfig"
    elif cluster_exists; then
        log "kept kind cluster $KIND_CLUSTER; use it with: export KUBECONFIG=$kubeconfig"
        log "(or: kind export kubeconfig --name $KIND_CLUSTER; delete it with: kind delete cluster --name $KIND_CLUSTER)"
    else
        rm -f "$kubeconfig"
    fi
    if ((rc != 0)); then
        log "e2e run FAILED (exit $rc); output and logs: $LOG_DIR"
    else
        log "e2e run passed"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$LOG_DIR"
rm -rf "$LOG_DIR/cluster" "$LOG_DIR/kind" "$LOG_DIR/e2e.log"

# --- Image ------------------------------------------------------------------

if [[ "$MODE" == control-plane ]]; then
    log "control-plane mode runs no SignalDB pods: not building or loading $IMAGE"
elif [[ "${SKIP_BUILD:-0}" == 1 ]]; then
    docker image inspect "$IMAGE" >/dev/null 2>&1 \
        || die "SKIP_BUILD=1, but there is no local image $IMAGE"
    log "using the existing image $IMAGE"
else
    log "building $IMAGE (the first build compiles everything in release mode and takes a while)"
    DOCKER_BUILDKIT=1 docker build -t "$IMAGE" "$REPO_ROOT"
fi

# --- Cluster ----------------------------------------------------------------

if cluster_exists; then
    log "reusing the existing kind cluster $KIND_CLUSTER"
else
    log "creating kind cluster $KIND_CLUSTER"
    create=(create cluster --name "$KIND_CLUSTER" --config "$KIND_CONFIG"
        --kubeconfig "$kubeconfig" --wait 180s)
    if [[ -n "${KIND_NODE_IMAGE:-}" ]]; then
        create+=(--image "$KIND_NODE_IMAGE")
    fi
    # Set first, so that a half-created cluster is deleted too.
    created_cluster=1
    kind "${create[@]}"
fi
kind get kubeconfig --name "$KIND_CLUSTER" >"$kubeconfig"
# The suite gets --kubeconfig; exporting it too means every helm and kubectl
# it starts talks to this cluster whatever it passes.
export KUBECONFIG="$kubeconfig"

if [[ "$MODE" == full ]]; then
    log "loading $IMAGE into the nodes of $KIND_CLUSTER"
    kind load docker-image "$IMAGE" --name "$KIND_CLUSTER"
fi

# --- Suite ------------------------------------------------------------------

suite=(cargo run --locked -p signaldb-e2e -- --kubeconfig "$kubeconfig" --image "$IMAGE" --mode "$MODE" "$@")
log "running: ${suite[*]}"
"${suite[@]}" 2>&1 | tee "$LOG_DIR/e2e.log"
