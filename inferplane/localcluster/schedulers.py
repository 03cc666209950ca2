"""What an extra kube-scheduler needs: its configuration and its RBAC.

A second scheduler in a real cluster runs under its own identity with the
stock ``system:kube-scheduler`` and ``system:volume-scheduler`` roles, plus a
Role for its own leader-election lease, because the stock role may only renew
the lease named ``kube-scheduler``. The e2e suite deploys it the same way, so
RBAC mistakes the chart could make show up here too. Pure functions.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .process import ManagedProcess

RBAC = "rbac.authorization.k8s.io"


@dataclass
class Scheduler:
    """A running kube-scheduler started by ``ControlPlane.start_scheduler``."""

    name: str
    process: ManagedProcess
    config_file: Path
    kubeconfig: Path
    port: int

    def stop(self) -> None:
        self.process.stop()

    def tail(self, lines: int = 30) -> str:
        return self.process.tail(lines)


def scheduler_config(config: Mapping[str, Any], name: str, kubeconfig: Path) -> dict[str, Any]:
    """Complete a KubeSchedulerConfiguration: kind, our kubeconfig, and its own lease.

    Leader election defaults to on with a lease named ``name`` in kube-system,
    so two schedulers never fight over the default ``kube-scheduler`` lease.
    """
    cfg = copy.deepcopy(dict(config))
    cfg.setdefault("apiVersion", "kubescheduler.config.k8s.io/v1")
    cfg.setdefault("kind", "KubeSchedulerConfiguration")
    cfg.setdefault("clientConnection", {})["kubeconfig"] = str(kubeconfig)
    election = cfg.setdefault("leaderElection", {})
    election.setdefault("leaderElect", True)
    election.setdefault("resourceNamespace", "kube-system")
    election.setdefault("resourceName", name)
    return cfg


def scheduler_rbac(name: str, user: str, lease_namespace: str, lease: str) -> list[dict[str, Any]]:
    """Bindings for ``user``: the stock scheduler roles and get/update on its own lease."""
    subjects = [{"kind": "User", "name": user, "apiGroup": RBAC}]
    lease_role = f"e2e-scheduler-{name}-lease"
    items: list[dict[str, Any]] = [
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"e2e-scheduler-{name}-{role.removeprefix('system:')}"},
            "subjects": subjects,
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
        }
        for role in ("system:kube-scheduler", "system:volume-scheduler")
    ]
    items.append(
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "Role",
            "metadata": {"name": lease_role, "namespace": lease_namespace},
            "rules": [
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "resourceNames": [lease],
                    "verbs": ["get", "update"],
                },
            ],
        }
    )
    items.append(
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": lease_role, "namespace": lease_namespace},
            "subjects": subjects,
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": lease_role},
        }
    )
    return items
