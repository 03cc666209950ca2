"""What goes into a model pod, one concern per module, applied in a fixed order by `webhook.mutate`.

Every step edits the private deep copy `mutate` hands it, reads only the pod and the resolved `Plan`,
and brings what it injects to the desired state without touching anything it does not own, so the
same steps serve the admission webhook, `inferplane inject`, `inferplane lint` and the tests.
"""
