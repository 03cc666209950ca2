"""Model registrations (where a model's bytes live, which files go where) and model-init, the init
container that lays a model out in the pod. The same code parses a registration in the webhook, in
the offline CLI and inside the pod."""
