"""InstanceTypes: the cluster-wide catalog of node selectors, resources and tolerations.

Shared by the webhook (which applies them to pods), the extender (which reads what was applied) and
the offline CLI. Quantities are compared exactly, never through floats.
"""
