#!/usr/bin/env bash
# make kind-e2e: deploy the example model on the kind cluster from `make kind-up` and score it
# through the router, from the host, over HTTPS verified against the release's CA.
set -euo pipefail
cd "$(dirname "$0")/../.."

KIND_CLUSTER="${KIND_CLUSTER:-inferplane}"
NAMESPACE="${NAMESPACE:-inferplane-system}"
APP_NAMESPACE="${APP_NAMESPACE:-default}"
DEPLOYMENT_FILE="${DEPLOYMENT_FILE:-examples/deployment.yaml}"
kubectl config use-context "kind-$KIND_CLUSTER" >/dev/null

[ -f "$DEPLOYMENT_FILE" ] || { echo "kind-e2e: $DEPLOYMENT_FILE not found" >&2; exit 1; }

# The model files: a local PersistentVolume on the first worker (the example names node edge-1).
sed "s/values: \[edge-1\]/values: [$KIND_CLUSTER-worker]/" examples/models/storage.yaml \
    | kubectl -n "$APP_NAMESPACE" apply -f -
# InstanceTypes and model registrations.
kubectl -n "$APP_NAMESPACE" apply -f examples/catalog/
kubectl -n "$APP_NAMESPACE" apply -f "$DEPLOYMENT_FILE"

deployment=$(kubectl -n "$APP_NAMESPACE" get -f "$DEPLOYMENT_FILE" -o jsonpath='{.metadata.name}')
endpoint=$(kubectl -n "$APP_NAMESPACE" get -f "$DEPLOYMENT_FILE" \
    -o jsonpath='{.spec.template.metadata.annotations.ml\.example/endpoint}')
endpoint="${endpoint:-$deployment}"
kubectl -n "$APP_NAMESPACE" rollout status "deployment/$deployment" --timeout 5m

selector=$(kubectl -n "$APP_NAMESPACE" get deployment "$deployment" \
    -o go-template='{{range $k, $v := .spec.selector.matchLabels}}{{$k}}={{$v}},{{end}}')
echo "kind-e2e: init containers the webhook injected:" \
    "$(kubectl -n "$APP_NAMESPACE" get pods -l "${selector%,}" -o jsonpath='{.items[0].spec.initContainers[*].name}')"

# Endpoint keys, when the endpoint has them (Secret <endpoint>-keys, data key "primary").
auth=()
if key=$(kubectl -n "$APP_NAMESPACE" get secret "$endpoint-keys" -o jsonpath='{.data.primary}' 2>/dev/null) \
        && [ -n "$key" ]; then
    auth=(-H "Authorization: Bearer $(base64 -d <<<"$key")")
fi

ca=$(mktemp)
trap 'rm -f "$ca"' EXIT
kubectl -n "$NAMESPACE" get secret inferplane-router-tls -o jsonpath='{.data.ca\.crt}' | base64 -d > "$ca"

url="https://localhost:8443/api/v1/endpoint/$endpoint/score"
echo "kind-e2e: POST $url"
for attempt in $(seq 1 30); do
    if answer=$(curl -sS --fail-with-body --cacert "$ca" "${auth[@]}" -H 'Content-Type: application/json' \
            -d '{"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}' "$url"); then
        echo "$answer"
        grep -q '"predictions"' <<<"$answer" && grep -q setosa <<<"$answer" \
            || { echo "kind-e2e: unexpected answer" >&2; exit 1; }
        echo "kind-e2e: ok"
        exit 0
    fi
    echo "kind-e2e: not answering yet (attempt $attempt/30)"; sleep 5
done
echo "kind-e2e: the router never answered; kubectl -n $NAMESPACE logs deploy/inferplane-router" >&2
exit 1
