"""The one entry point to the fleet's durable state (tasks, agents, messages,
alerts, events, usage). Every component goes through here; nothing else opens
the database or writes SQL. The implementation lives in `fleet.store`.
"""

from fleet.store import *  # noqa: F401,F403
from fleet.store import __all__  # noqa: F401
