"""User-facing errors: the CLI prints their message as one line, without a traceback."""

from __future__ import annotations


class CDBenchError(Exception):
    """Base class of errors caused by the user's input (files, options, data)."""


class DataError(CDBenchError, ValueError):
    """Bad input data: the message names the file, field and row."""


class ModelError(CDBenchError, ValueError):
    """A model that cannot be created or run (unknown name, bad checkpoint, missing extra)."""
