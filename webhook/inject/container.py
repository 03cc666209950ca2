"""The scoring container: the app volume read-only at the app root, and where to find the model.

The env vars are the Azure ML inference server's contract, so an Azure scoring image runs as is.
A value the user set on purpose (an env var we did not inject before) is kept, with a warning:
they may know better, and overwriting would change something that is not ours.
"""

from __future__ import annotations

from typing import Any

from webhook.inject import keys
from webhook.inject.done import Done
from webhook.inject.plan import APP_VOLUME, Choice, Plan
from webhook.inject.podspec import child_list, find
from webhook.inject.problems import FieldDenied, quote


def desired_env(choice: Choice) -> tuple[tuple[str, str], ...]:
    """(name, value) of each env var the scoring container gets, in order."""
    root = choice.config.app_root.rstrip("/") or "/"
    models_dir = f"{root.rstrip('/')}/{keys.MODELS_DIR}"
    if len(choice.models) == 1:
        ref = choice.models[0].ref
        models_dir = f"{models_dir}/{ref.name}/{ref.version}"
    env = {keys.ENV_MODEL_DIR: models_dir}
    if choice.delivers_code:
        env[keys.ENV_APP_ROOT] = root
        if choice.entry_script:
            env[keys.ENV_ENTRY_SCRIPT] = choice.entry_script
    return tuple(env.items())


def _mount_app(container: dict[str, Any], plan: Plan, field: str) -> None:
    mounts = child_list(container, "volumeMounts")
    app_root = plan.config.app_root
    for index, mount in enumerate(mounts):
        if (mount.get("mountPath") or "").rstrip("/") != app_root.rstrip("/"):
            continue
        if mount.get("name") == APP_VOLUME:
            if mount.get("readOnly") is not True:
                mounts[index] = {**mount, "readOnly": True}
            return
        raise FieldDenied(
            f"{field}.volumeMounts[{index}].mountPath",
            f"container {quote(container['name'])} already mounts volume {quote(mount.get('name'))} "
            f"at {app_root}, where inferplane puts the model; move that mount",
        )
    mounts.append({"name": APP_VOLUME, "mountPath": app_root, "readOnly": True})


def _set_env(container: dict[str, Any], plan: Plan) -> tuple[list[str], list[str]]:
    """Returns (names now ours, warnings)."""
    env = child_list(container, "env")
    owned, warnings = [], []
    for name, value in plan.choice.once(desired_env):
        index = find(env, name)
        desired = {"name": name, "value": value}
        if index is None:
            env.append(desired)
        elif env[index] == desired:
            pass
        elif name in plan.prior.env:
            env[index] = desired
        else:
            shown = "from valueFrom" if "valueFrom" in env[index] else quote(env[index].get("value", ""))
            warnings.append(
                f"container {quote(container['name'])} sets {name} itself ({shown}); kept, not {value}"
            )
            continue
        owned.append(name)
    return owned, warnings


def prepare_container(pod: dict[str, Any], plan: Plan) -> Done:
    container = pod["spec"]["containers"][plan.container]
    _mount_app(container, plan, f"spec.containers[{plan.container}]")
    owned, warnings = _set_env(container, plan)
    return Done(tuple(warnings), {"env": tuple(owned)})
