"""Defaults that the CLI shows in `--help` and the modules behind it use: kept free of imports, so
registering `inferplane router` costs nothing for the other commands (see `inferplane.cli`)."""

# Leases: <prefix>-autoscaler and <prefix>-load-<identity>; the chart passes <release>-inferplane-router.
LEASE_PREFIX = "inferplane-router"
# A mirror copy needs the whole body held until it is sent; larger bodies are not copied.
MIRROR_MAX_BODY = 1024 * 1024
