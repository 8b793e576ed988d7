"""Errors raised by the store.

Every error carries a message meant for a person: what happened and what to do.
They are backend-neutral: callers never see sqlite3 or psycopg exceptions.
"""


class StoreError(Exception):
    """Base class for every error the store raises on purpose."""


class InvalidInput(StoreError, ValueError):
    """The caller passed something the store refuses; nothing was written."""


class NotFound(StoreError, LookupError):
    """The task (or other row) named does not exist."""


class LeaseLost(StoreError):
    """The lease token is stale: the task was reaped, released or finished.

    The caller no longer owns the attempt and must stop working on it; the
    store changed nothing.
    """


class InvalidTransition(StoreError):
    """The task is not in a state that allows this operation."""


class StoreUnavailable(StoreError):
    """The database could not complete the operation (busy past the timeout,
    disk full, I/O error). Nothing was written; the caller may retry."""


class StoreDamaged(StoreUnavailable):
    """The database is proven unusable as it stands: an integrity check
    failed, the file is truncated, or it was emptied in a home that has
    history. Retrying will not help; the message names the backups to
    restore. The file was left as it was."""
