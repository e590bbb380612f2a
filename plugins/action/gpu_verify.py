# Copyright: airig engineers
# Apache-2.0 (see galaxy.yml)
"""Action plugin for airig.rig.gpu_verify: resolve a profile name on the controller."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

try:
    from airig import profiles as airig_profiles
    from airig.errors import AirigError
except ImportError:  # pragma: no cover - exercised only without the package
    airig_profiles = None  # type: ignore[assignment]


class ActionModule(ActionBase):
    """Load and validate a named profile here, then run the module with its data."""

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        profile = args.get("profile")
        if isinstance(profile, str):
            if airig_profiles is None:
                result.update(
                    failed=True,
                    msg="option profile: a profile name needs the airig "
                    "Python package on the controller; pass the profile dictionary",
                )
                return result
            try:
                args["profile"] = airig_profiles.load(profile).raw
            except AirigError as exc:
                result.update(failed=True, msg=f"option profile: {exc}")
                return result
        result.update(
            self._execute_module(
                module_name="airig.rig.gpu_verify", module_args=args, task_vars=task_vars
            )
        )
        return result
