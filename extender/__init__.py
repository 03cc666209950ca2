"""The scheduler extender: `/filter`, `/prioritize` and `/preempt` for kube-scheduler.

Pure placement logic (`rules`, `scores`, `policy`) works on compact values (`model`) kept by an
incrementally updated cache (`state`) fed by list+watch; `wire` speaks the scheduler's JSON and
`server` is a thin HTTP shell around them. The formula is written down in `extender/README.md`.
"""
