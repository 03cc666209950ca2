"""The built-in `defaultinstancetype`: what a pod gets when it names no instance type.

Like Azure ML's, it is not a custom resource (`kubectl get instancetypes` does not list it), and a
CR of the same name replaces it. Requests equal limits, so such a pod is Guaranteed QoS and never
bursts into its neighbours; the numbers are deliberately small, to push people to define their own.
"""

from __future__ import annotations

from instance_types.instance_type import InstanceType

DEFAULT_NAME = "defaultinstancetype"
DEFAULT_CPU = "600m"
DEFAULT_MEMORY = "1536Mi"


def builtin_default(cpu: str = DEFAULT_CPU, memory: str = DEFAULT_MEMORY) -> InstanceType:
    """The default with the operator's numbers; they are checked like any InstanceType's."""
    resources = {"cpu": cpu, "memory": memory}
    checked = InstanceType.from_object(
        InstanceType(DEFAULT_NAME, requests=resources, limits=resources).to_object()
    )
    return InstanceType(DEFAULT_NAME, requests=checked.requests, limits=checked.limits, builtin=True)
