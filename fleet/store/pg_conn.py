"""psycopg connections as the store's mixins use them: `execute` with the
store's SQL (translated by pg_sql), rows that read like sqlite3.Row (by
index, by name, `.keys()`), numbers typed as SQLite hands them back, and
PostgreSQL's errors turned into the store's own (StoreUnavailable,
InvalidInput, ...) with a message that never shows the DSN's password.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import psycopg
from psycopg import errors as pg_errors
from psycopg import postgres
from psycopg.adapt import AdaptersMap, Dumper, Loader
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .errors import InvalidInput, StoreError, StoreUnavailable
from .pg_sql import translate


# -- rows ------------------------------------------------------------------
class Row(tuple):
    """A result row: a tuple (index, unpack, iterate) that also answers
    row["column"] and row.keys(), as sqlite3.Row does."""

    __slots__ = ()
    _names: tuple[str, ...] = ()
    _index: ClassVar[dict[str, int]] = {}

    def __getitem__(self, key):
        if type(key) is str:
            try:
                return tuple.__getitem__(self, self._index[key])
            except KeyError:
                raise IndexError(f"no such column: {key}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


@functools.lru_cache(maxsize=1024)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    index = {name: i for i, name in reversed(list(enumerate(names)))}  # the first of a repeated name wins
    return type("Row", (Row,), {"__slots__": (), "_names": names, "_index": index})


def row_factory(cursor):
    description = cursor.description
    if description is None:
        return tuple
    cls = _row_class(tuple(c.name for c in description))
    return functools.partial(tuple.__new__, cls)


# -- values ----------------------------------------------------------------
class _NumberLoader(Loader):
    """numeric (what SUM over bigint gives) as SQLite gives it: an int when
    whole, else a float; never a Decimal."""

    def load(self, data):
        text = bytes(data)
        if text.lstrip(b"-").isdigit():
            return int(text)
        return float(text)


class _BoolAsInt(Dumper):
    """A Python bool bound as 1 or 0, as SQLite stores it (the columns are integers)."""

    oid = postgres.types["int8"].oid

    def dump(self, obj):
        return b"1" if obj else b"0"


ADAPTERS = AdaptersMap(psycopg.adapters)
ADAPTERS.register_loader("numeric", _NumberLoader)
ADAPTERS.register_dumper(bool, _BoolAsInt)


class PgConnection:
    """One psycopg connection (autocommit; transactions are explicit BEGIN
    and COMMIT) that runs the store's SQL and raises the store's errors."""

    __slots__ = ("pid", "raw", "where")

    def __init__(self, raw: psycopg.Connection, where: str, pid: int):
        self.raw, self.where, self.pid = raw, where, pid

    def execute(self, sql: str, params: Any = ()):
        cur = self.raw.cursor()
        try:
            cur.execute(translate(sql), params)
        except psycopg.Error as exc:
            raise store_error(exc, self.where) from exc
        except (UnicodeEncodeError, OverflowError) as exc:
            raise refused_value(exc) from None
        return cur

    def executemany(self, sql: str, seq_of_params):
        cur = self.raw.cursor()
        try:
            cur.executemany(translate(sql), list(seq_of_params))
        except psycopg.Error as exc:
            raise store_error(exc, self.where) from exc
        except (UnicodeEncodeError, OverflowError) as exc:
            raise refused_value(exc) from None
        return cur

    def run(self, sql: str, params: Any = None):
        """PostgreSQL's own SQL, not translated (DDL, session settings)."""
        cur = self.raw.cursor()
        try:
            cur.execute(sql, params)
        except psycopg.Error as exc:
            raise store_error(exc, self.where) from exc
        return cur

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    @property
    def usable(self) -> bool:
        return not self.raw.closed and not self.raw.broken

    def close(self) -> None:
        try:
            self.raw.close()
        except psycopg.Error:
            pass


# -- DSNs ------------------------------------------------------------------
def parse_dsn(dsn: str) -> dict[str, str]:
    """The DSN's parts; InvalidInput (without echoing it) when it is not one."""
    if not isinstance(dsn, str) or not dsn.strip():
        raise InvalidInput("no PostgreSQL DSN was given: set [store] dsn in fleet.toml (or the secret or "
                           "environment variable FLEET_STORE_DSN), e.g. postgresql://fleet@db.lan:5432/fleet")
    try:
        return conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        raise InvalidInput(f"the PostgreSQL DSN is not valid ({_first_line(exc, hide=dsn)}); write it as "
                           "postgresql://USER@HOST:PORT/DATABASE ([store] dsn or FLEET_STORE_DSN)") from None


def describe_dsn(dsn: str) -> str:
    """user@host:port/dbname, never the password."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "(an invalid DSN)"
    host = parts.get("host") or parts.get("hostaddr") or "localhost (Unix socket)"
    user = parts.get("user")
    return f"{user + '@' if user else ''}{host}:{parts.get('port') or 5432}/{parts.get('dbname') or '(default)'}"


def without_password(dsn: str) -> tuple[str, str | None]:
    """(the DSN without its password, the password or None): a password is
    handed to pg_dump through the environment, never on its command line."""
    parts = conninfo_to_dict(dsn)
    password = parts.pop("password", None)
    return make_conninfo(**parts), password


# -- errors ----------------------------------------------------------------
def _first_line(exc: BaseException, hide: str | None = None) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if hide:
        text = text.replace(hide, "(the DSN)")
    return text


_HINTS = {
    "53100": "the PostgreSQL server's disk is full; free space there",
    "25006": "the server accepts no writes (a read-only standby, or default_transaction_read_only)",
    "55P03": "a row or table stayed locked past [queue] busy_timeout_s; retry",
    "40P01": "two transactions waited on each other and PostgreSQL cancelled this one; retry",
    "40001": "a concurrent transaction changed the same rows; retry",
    "57014": "the statement was cancelled (statement timeout, or an operator)",
    "42P01": "the store's tables are missing in its schema; open the store once with migration on "
             "(any Fleet command) to create them",
    "3F000": "the store's schema is missing; open the store once with migration on (any Fleet command) "
             "to create it",
}


def refused_value(exc: Exception) -> InvalidInput:
    """A value psycopg cannot send (it was never sent: nothing was written)."""
    if isinstance(exc, UnicodeEncodeError):
        return InvalidInput("a text value is not valid Unicode (a lone surrogate); decode bytes properly "
                            "before passing them")
    return InvalidInput(f"a number is too large for the store ({exc}); ids and counts go up to 2**63 - 1")


def store_error(exc: psycopg.Error, where: str, doing: str = "complete the operation") -> StoreError:
    """psycopg's error as the store's: a value the database refuses is
    InvalidInput (nothing was written); anything about the server or the
    connection is StoreUnavailable (retrying may help)."""
    text = _first_line(exc)
    if isinstance(exc, pg_errors.DataError) or (
            isinstance(exc, psycopg.ProgrammingError) and "cannot adapt" in text):
        if "NUL" in text:
            return InvalidInput("a text value contains a NUL character (\\x00), which PostgreSQL text cannot "
                                "hold; nothing was written")
        if "out of range" in text:
            return InvalidInput(f"a number is too large for the store ({text}); ids and counts go up to "
                                "2**63 - 1; nothing was written")
        return InvalidInput(f"the store refused a value ({text}); nothing was written")
    if isinstance(exc, pg_errors.IntegrityError):
        return InvalidInput(f"the store refused the change ({text}); nothing was written")
    hint = _HINTS.get(getattr(exc, "sqlstate", None) or "")
    if hint is None and isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        hint = ("the connection to the PostgreSQL server failed or was lost; check that the server is running "
                "and reachable ([store] dsn or FLEET_STORE_DSN); the store reconnects on the next call")
    message = f"the PostgreSQL store {where} could not {doing}: {text}"
    return StoreUnavailable(f"{message}. {hint[:1].upper() + hint[1:]}" if hint else message)


def connect_error(exc: psycopg.Error, dsn: str) -> StoreError:
    """Why a connection could not be opened, for a person: which server, and
    what to check. A DSN libpq cannot parse is InvalidInput."""
    text = _first_line(exc, hide=dsn)
    where = describe_dsn(dsn)
    if isinstance(exc, psycopg.ProgrammingError) or "invalid" in text and "dsn" in text.lower():
        return InvalidInput(f"the PostgreSQL DSN is not valid ({text}); write it as "
                            "postgresql://USER@HOST:PORT/DATABASE ([store] dsn or FLEET_STORE_DSN)")
    if "password authentication failed" in text or "no password supplied" in text:
        hint = ("the server refused the login: put the password in ~/.pgpass or PGPASSWORD, or the whole DSN "
                "in the secret FLEET_STORE_DSN")
    elif "does not exist" in text:
        hint = "create that database (or role) on the server, or fix [store] dsn"
    else:
        hint = "start the server, or fix [store] dsn (or FLEET_STORE_DSN) to name a reachable one"
    return StoreUnavailable(f"cannot connect to the PostgreSQL store at {where}: {text}. {hint[:1].upper() + hint[1:]}")
