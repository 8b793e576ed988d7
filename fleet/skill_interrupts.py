"""The exceptions a worker raises inside a running skill to stop it (its task
was cancelled, or its lease lost), and how long a skill may ignore one before
the worker process ends. Shared by the single-task worker (worker.py) and the
pool (worker_pool.py), so both raise and catch the very same classes (a worker
runs as `python fleet/worker.py`, whose module is __main__, not fleet.worker).
"""

CANCEL_GRACE_S = 5.0  # a cancelled skill that has not stopped after this long ends its process
LOST_GRACE_S = 1.0  # a skill whose lease is lost must stop at once


class TaskCancelled(BaseException):
    """Raised inside a running skill when its task was cancelled (BaseException so
    a skill's `except Exception` does not swallow it)."""


class LeaseInterrupted(BaseException):
    """Raised inside a running skill when this worker no longer holds the task."""
