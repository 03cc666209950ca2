#!/usr/bin/env bash
# make kind-up: a kind cluster with inferplane installed from this checkout.
#   kind cluster "$KIND_CLUSTER" (created if missing) -> docker build -> kind load -> helm upgrade --install
# Needs docker (with a running engine), kind, kubectl and helm on PATH. HELM may point at another
# helm, e.g. the one the e2e suite builds: HELM=$(inferplane cluster build helm | cut -d' ' -f2).
set -euo pipefail
cd "$(dirname "$0")/../.."

KIND_CLUSTER="${KIND_CLUSTER:-inferplane}"
IMAGE="${IMAGE:-inferplane:dev}"
NAMESPACE="${NAMESPACE:-inferplane-system}"
HELM="${HELM:-helm}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-}"   # e.g. kindest/node:v1.31.0; the chart needs >= 1.30

for tool in docker kind kubectl "$HELM"; do
    command -v "$tool" >/dev/null || { echo "kind-up: '$tool' is not on PATH" >&2; exit 1; }
done
docker info >/dev/null 2>&1 || { echo "kind-up: the Docker engine is not running" >&2; exit 1; }

if ! kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
    config=$(mktemp)
    sed "s#__REPO__#$PWD#g" hack/kind/cluster.yaml > "$config"
    kind create cluster --name "$KIND_CLUSTER" --config "$config" \
        ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 120s
    rm -f "$config"
fi
kubectl config use-context "kind-$KIND_CLUSTER" >/dev/null

docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$KIND_CLUSTER"

"$HELM" upgrade --install inferplane charts/inferplane \
    --namespace "$NAMESPACE" --create-namespace \
    --values hack/kind/values.yaml \
    --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
    --wait --timeout 5m
# A new image under the same tag does not change the pod templates: restart to pick it up.
kubectl -n "$NAMESPACE" rollout restart deployment -l app.kubernetes.io/instance=inferplane
kubectl -n "$NAMESPACE" rollout status deployment -l app.kubernetes.io/instance=inferplane --timeout 5m
"$HELM" test inferplane --namespace "$NAMESPACE" --logs
echo "kind-up: inferplane is running in kind-$KIND_CLUSTER; next: make kind-e2e"
