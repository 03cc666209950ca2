"""A real Kubernetes control plane on loopback, built from pinned Go modules: no Docker, no cluster.

etcd, kube-apiserver, kube-controller-manager and any number of kube-schedulers run on 127.0.0.1,
with Node objects standing in for machines. `inferplane demo` runs the product on it, `inferplane
cluster up` hands it to a developer, and the e2e suite's fixtures start it; all three share this
one package so what the tests prove is what the demo shows. See README.md beside this file.

Importing the package imports nothing: `build` is standard library only, and `controlplane` (which
needs the kubernetes client and cryptography) is imported by whoever starts a cluster.
"""
