"""Small helpers for error messages: 'did you mean' suggestions."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(value: str, allowed: Iterable[str]) -> str:
    """Return ' (did you mean X?)' when ``value`` is close to one of ``allowed``, else ''."""
    options = list(allowed)
    lowered = {o.lower(): o for o in options}
    close = difflib.get_close_matches(value.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean '{lowered[close[0]]}'?)" if close else ""


def allowed_list(allowed: Iterable[str]) -> str:
    """Render allowed values as a sorted, comma-separated list."""
    return ", ".join(sorted(allowed))
