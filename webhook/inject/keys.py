"""The names users and other parts of inferplane rely on: annotations, labels, paths, container name.

They are the public contract of the webhook: the router selects pods by the labels, model-init reads
the paths, and users write the annotations, so they live in one place.
"""

from __future__ import annotations

PREFIX = "ml.example/"

# Annotations a user writes on the pod template.
MODEL = "ml.example/model"
INSTANCE_TYPE = "ml.example/instance-type"
CONTAINER = "ml.example/container"
ENDPOINT = "ml.example/endpoint"
TRAFFIC = "ml.example/traffic"
MIRROR = "ml.example/mirror"
USER_ANNOTATIONS = (MODEL, INSTANCE_TYPE, CONTAINER, ENDPOINT, TRAFFIC, MIRROR)

# What the webhook writes.
INJECTED = "ml.example/injected"  # annotation: JSON record of what was injected (webhook.inject.status)
INSTANCE_TYPE_LABEL = "ml.example/instance-type"
ENDPOINT_LABEL = "ml.example/endpoint"
DEPLOYMENT_LABEL = "ml.example/deployment"
OWN_ANNOTATIONS = (INJECTED,)

# The init container and where it finds its inputs (see `inferplane model-init --help`).
INIT_CONTAINER = "model-init"
CONFIG_ROOT = "/etc/inferplane/models"  # registration i's ConfigMap at <root>/<name>/<version>
SOURCE_ROOT = "/mnt/models"  # registration i's storage at <root>/<name>/<version>
MODELS_DIR = "azureml-models"  # under the app root, as the Azure ML scoring server expects

# Environment of the scoring container (the Azure ML inference server contract).
ENV_MODEL_DIR = "AZUREML_MODEL_DIR"
ENV_ENTRY_SCRIPT = "AZUREML_ENTRY_SCRIPT"
ENV_APP_ROOT = "AML_APP_ROOT"
