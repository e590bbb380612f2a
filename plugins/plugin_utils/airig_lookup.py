# Copyright: airig engineers
# Apache-2.0 (see galaxy.yml)
"""What airig's lookup plugins share: the airig package on the controller, options, and its
errors turned into lookup errors that carry the user's message."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleError, AnsibleLookupError
from ansible.plugins.lookup import LookupBase

try:
    from airig.errors import AirigError
except ImportError as exc:  # pragma: no cover - exercised only without the package
    AIRIG_IMPORT_ERROR: ImportError | None = exc
else:
    AIRIG_IMPORT_ERROR = None


class AirigLookup(LookupBase):
    """A lookup answering one result per term through ``one``; AirigError stops the play."""

    def one(self, term: str) -> Any:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def run(self, terms: list[Any], variables: Any = None, **kwargs: Any) -> list[Any]:
        if AIRIG_IMPORT_ERROR is not None:
            raise AnsibleError(
                "the airig Python package is missing on the controller: install it with "
                "'pip install airig' (it carries this collection)"
            ) from AIRIG_IMPORT_ERROR
        self.set_options(var_options=variables, direct=kwargs)
        try:
            return [self.one(str(term)) for term in terms]
        except AirigError as exc:
            raise AnsibleLookupError(str(exc)) from exc
