"""inferplane: serve ML models on any Kubernetes cluster by annotating plain Deployments.

This package holds what every part shares: the command line, errors that carry the user's sentence,
logging, metrics, serving and the list+watch cache. The parts themselves live beside it:
`instance_types/`, `models/`, `webhook/`, `extender/`, `router/`.
"""

__version__ = "0.1.0"
