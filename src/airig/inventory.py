"""Ansible inventories read on the controller as data (issue 29 item 12, issue 30 item 3).

`airig plan -i`, `airig bundle -i`, `airig platform --inventory` and `airig provision -i` read an
inventory before anything runs. An inventory is data: only Ansible's YAML, INI and TOML
inventory plugins read it (an executable file is never run as an inventory script, no
inventory plugin configuration runs code), and a variable's Jinja is expanded in a sandbox
that knows the inventory's own variables (``{{ inventory_dir }}/profiles``) and nothing else:
no ``lookup()``/``query()`` (which would run ``pipe``, read files or reach the network on the
controller), no Ansible filters, no attribute tricks. A value that needs more is refused with
the reason; give the value itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airig.errors import InputError

# Ansible's inventory plugins that read files as data (ansible-core's plugins/inventory).
DATA_PLUGINS = ("yaml", "ini", "toml")
# What `airig provision` gives ansible-runner, so the run reads the inventory the same way.
RUNNER_ENV = {"ANSIBLE_INVENTORY_ENABLED": ",".join(DATA_PLUGINS)}
_DEPTH = 5


@dataclass
class Inventory:
    path: Path
    manager: Any  # ansible.inventory.manager.InventoryManager
    variables: Any  # ansible.vars.manager.VariableManager

    def hosts(self, group: str | None = None) -> list[Any]:
        if group is not None:
            return list(self.manager.groups[group].get_hosts()) if self.has(group) else []
        return list(self.manager.get_hosts())

    def has(self, group: str) -> bool:
        return group in self.manager.groups

    def host_vars(self, host: Any) -> dict[str, Any]:
        return dict(self.variables.get_vars(host=host))


@contextmanager
def _data_plugins_only() -> Iterator[None]:
    import ansible.constants as C

    before = C.INVENTORY_ENABLED
    C.INVENTORY_ENABLED = list(DATA_PLUGINS)
    try:
        yield
    finally:
        C.INVENTORY_ENABLED = before


def load(path: Path, flag: str) -> Inventory:
    """The inventory at ``path`` (a file or a directory), read by the data plugins only; refused
    when it names no host."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    if not path.exists():
        raise InputError(f"{flag}: {path} does not exist")
    loader = DataLoader()
    try:
        with _data_plugins_only():
            manager = InventoryManager(loader=loader, sources=[str(path)])
    except Exception as exc:  # Ansible's own errors carry the sentence
        raise InputError(f"{flag}: {path}: {exc}") from exc
    if not manager.get_hosts():
        raise InputError(
            f"{flag}: {path} holds no inventory host: give a YAML or INI inventory that names "
            f"the boxes ({', '.join(DATA_PLUGINS)} files are read; scripts and inventory "
            "plugins are not run)"
        )
    return Inventory(path, manager, VariableManager(loader=loader, inventory=manager))


def _environment() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def template(value: Any, variables: dict[str, Any], where: str) -> Any:
    """``value`` with its Jinja expanded against ``variables`` in a sandbox (see the module)."""
    if isinstance(value, dict):
        return {str(k): template(v, variables, where) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [template(v, variables, where) for v in value]
    if not isinstance(value, str):
        return value
    from jinja2 import TemplateError

    env = _environment()
    text = str(value)
    plain = {k: str(v) if isinstance(v, str) else v for k, v in variables.items()}
    for _ in range(_DEPTH):
        if "{{" not in text and "{%" not in text:
            return text
        try:
            text = env.from_string(text).render(plain)
        except (TemplateError, TypeError, ValueError) as exc:
            raise InputError(
                f"{where}: {str(value)[:200]!r}: {exc}; airig reads inventories on the controller "
                "as data: only the inventory's own variables are expanded (no lookup(), query() "
                "or Ansible filters): give the value itself"
            ) from None
    raise InputError(f"{where}: {str(value)[:200]!r}: nested templates more than {_DEPTH} deep")
