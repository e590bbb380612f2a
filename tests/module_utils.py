"""Unit-test helpers for Ansible modules (the community.general tests/unit/plugins/modules/utils
pattern): set_module_args, and exit_json/fail_json patched to raise with the result."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class AnsibleExitJson(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("exit_json")
        self.result = result


class AnsibleFailJson(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("msg", "fail_json"))
        self.result = result


def _exit_json(self: basic.AnsibleModule, **kwargs: Any) -> None:
    kwargs.setdefault("changed", False)
    raise AnsibleExitJson(kwargs)


def _fail_json(self: basic.AnsibleModule, **kwargs: Any) -> None:
    kwargs["failed"] = True
    raise AnsibleFailJson(kwargs)


@contextmanager
def set_module_args(
    args: dict[str, Any], *, check_mode: bool = False, diff: bool = False
) -> Iterator[None]:
    full = dict(args)
    if check_mode:
        full["_ansible_check_mode"] = True
    if diff:
        full["_ansible_diff"] = True
    with (
        patch_module_args(full),
        mock.patch.multiple(basic.AnsibleModule, exit_json=_exit_json, fail_json=_fail_json),
    ):
        yield
