"""Exceptions that carry a message a user can act on, and the exit code the CLI returns."""

from __future__ import annotations


class AirigError(Exception):
    """Base error: ``str(err)`` is meant for the user, ``exit_code`` for the shell."""

    exit_code = 1


class InputError(AirigError):
    """Bad input from the user (a profile, a model name, an option): nothing was changed."""

    exit_code = 2


class ProfileError(InputError):
    """A build profile is missing or malformed."""


class CatalogError(InputError):
    """An unknown model or quantization format, or a malformed model file."""
