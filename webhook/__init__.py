"""The admission webhook: `/mutate-pod` injects a model and its InstanceType into pods that carry
`ml.example/model`; `/validate-workload` warns or denies at `kubectl apply` time. The logic is pure
(review in, answer out) so the offline `inferplane inject` and the tests run the very same code."""
