"""The fleet's store on PostgreSQL: the same queue and fleet-state mixins as
the SQLite `Store`, over the PostgreSQL connection layer and its dialect.
Imported on first use (`fleet.store.postgres_store`), so a SQLite fleet never
loads psycopg.
"""

from __future__ import annotations

from .fleetstate import FleetStateMixin
from .hardware import HardwareMixin
from .history import HistoryMixin
from .monitoring import MonitoringMixin
from .postgres_base import PostgresBase, PostgresDialect
from .operations import OperationsMixin
from .reports import ReportsMixin
from .tasks import TaskQueueMixin
from .usage import UsageMixin
from .workflows import WorkflowMixin


class PostgresStore(PostgresDialect, TaskQueueMixin, HistoryMixin, FleetStateMixin, ReportsMixin, MonitoringMixin,
                    HardwareMixin, UsageMixin, OperationsMixin, WorkflowMixin, PostgresBase):
    """The fleet's store on a shared PostgreSQL server, in one schema. Safe to
    share across threads; each thread and each process gets its own reused
    connection."""
