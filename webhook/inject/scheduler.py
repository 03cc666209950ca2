"""Send model pods to the inferplane scheduler when the operator configured one (issue 4).

Only pods on the default scheduler are moved: a pod that asked for another scheduler (Volcano, a
gang scheduler) made a choice that is not ours to undo; it is told GPU placement is skipped.
"""

from __future__ import annotations

from typing import Any

from webhook.inject.done import Done
from webhook.inject.plan import Plan
from webhook.inject.problems import quote

DEFAULT_SCHEDULER = "default-scheduler"


def apply_scheduler(pod: dict[str, Any], plan: Plan) -> Done:
    wanted = plan.config.scheduler_name
    if not wanted:
        return Done()
    spec = pod["spec"]
    current = spec.get("schedulerName")
    if current in (None, "", DEFAULT_SCHEDULER):
        spec["schedulerName"] = wanted
    elif current != wanted:
        skipped = f"pod uses scheduler {quote(current)}, not {quote(wanted)}; GPU placement is skipped"
        return Done((skipped,))
    return Done()
