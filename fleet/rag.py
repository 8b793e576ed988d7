"""The retrieval index: a SQLite FTS5 full-text index of text files in chunks, kept in
its own database file (knowledge/rag.db by default, never the fleet database).
Incremental by file hash: unchanged files are skipped, changed ones re-chunked,
vanished ones dropped. Used by the rag_index and rag_query skills.
This is a skill-owned index, not the fleet store: it is the one place above
fleet/store/ that opens SQLite itself, and nothing here holds fleet state.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path       TEXT PRIMARY KEY,
    root       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    chunks     INTEGER NOT NULL,
    indexed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_files_root ON files (root);
CREATE TABLE IF NOT EXISTS chunks (
    id         INTEGER PRIMARY KEY,
    path       TEXT NOT NULL REFERENCES files(path) ON DELETE CASCADE,
    chunk_no   INTEGER NOT NULL,
    start_line INTEGER NOT NULL,
    end_line   INTEGER NOT NULL,
    text       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_chunks_path ON chunks (path);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, path UNINDEXED, content='chunks', content_rowid='id', tokenize='unicode61'
);
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text, path) VALUES (new.id, new.text, new.path);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, path) VALUES ('delete', old.id, old.text, old.path);
END;
"""


class RagError(Exception):
    """The index cannot be used as asked; the message says what to do."""


def chunk_lines(text: str, chunk_chars: int, overlap_lines: int) -> list[tuple[int, int, str]]:
    """Split text into (start_line, end_line, text) chunks of about chunk_chars,
    on line boundaries, with `overlap_lines` lines repeated between neighbours."""
    lines = text.splitlines()
    out: list[tuple[int, int, str]] = []
    i = 0
    while i < len(lines):
        size, j = 0, i
        while j < len(lines) and (size == 0 or size + len(lines[j]) + 1 <= chunk_chars):
            size += len(lines[j]) + 1
            j += 1
        body = "\n".join(lines[i:j])
        if body.strip():
            out.append((i + 1, j, body))
        if j >= len(lines):
            break
        i = max(i + 1, j - overlap_lines)
    return out


def fts_query(text: str, *, any_term: bool = False) -> str:
    """A safe FTS5 query from free text: each word (identifiers split on '_') is a
    quoted phrase; all must match, or any when `any_term`."""
    phrases = []
    for word in text.split():
        parts = re.findall(r"[^\W_]+", word)
        if parts:
            phrases.append('"' + " ".join(parts) + '"')
    if not phrases:
        raise RagError(f"the query {text!r} has no searchable words")
    return (" OR " if any_term else " ").join(phrases)


class RagIndex:
    """One index file. Not shared across threads; open one per task."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA busy_timeout = 30000")
        try:
            self.conn.executescript(_SCHEMA)
        except sqlite3.OperationalError as exc:
            if "fts5" in str(exc).lower():
                raise RagError("this Python's SQLite has no FTS5 module; use a Python built with a standard SQLite") from None
            raise

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- indexing ----------------------------------------------------------
    def index_files(self, root: str, files: Iterable[Path], *, chunk_chars: int, overlap_lines: int,
                    max_file_bytes: int, prune_missing: bool = True) -> dict:
        """Index `files` found under `root`; returns counts of what changed."""
        stats = {"files_seen": 0, "indexed": 0, "unchanged": 0, "removed": 0, "skipped": 0, "chunks_added": 0}
        skipped: list[str] = []
        seen: set[str] = set()
        for p in files:
            key = str(p.resolve())
            seen.add(key)
            stats["files_seen"] += 1
            try:
                st = p.stat()
            except OSError:
                continue
            if st.st_size > max_file_bytes:
                stats["skipped"] += 1
                skipped.append(f"{key} ({st.st_size} bytes > {max_file_bytes})")
                continue
            row = self.conn.execute("SELECT sha256, size, mtime_ns FROM files WHERE path = ?", (key,)).fetchone()
            if row is not None and row["size"] == st.st_size and row["mtime_ns"] == st.st_mtime_ns:
                stats["unchanged"] += 1
                continue
            data = p.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if row is not None and row["sha256"] == digest:
                self.conn.execute("UPDATE files SET mtime_ns = ?, size = ? WHERE path = ?", (st.st_mtime_ns, st.st_size, key))
                stats["unchanged"] += 1
                continue
            if b"\0" in data[:4096]:
                stats["skipped"] += 1
                skipped.append(f"{key} (binary)")
                continue
            pieces = chunk_lines(data.decode("utf-8", errors="replace"), chunk_chars, overlap_lines)
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.execute("DELETE FROM chunks WHERE path = ?", (key,))
                self.conn.execute("DELETE FROM files WHERE path = ?", (key,))
                self.conn.execute(
                    "INSERT INTO files (path, root, sha256, size, mtime_ns, chunks, indexed_at) VALUES (?,?,?,?,?,?,?)",
                    (key, root, digest, st.st_size, st.st_mtime_ns, len(pieces), time.time()))
                self.conn.executemany(
                    "INSERT INTO chunks (path, chunk_no, start_line, end_line, text) VALUES (?,?,?,?,?)",
                    [(key, n, a, b, body) for n, (a, b, body) in enumerate(pieces)])
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
            stats["indexed"] += 1
            stats["chunks_added"] += len(pieces)
        if prune_missing:
            gone = [r["path"] for r in self.conn.execute("SELECT path FROM files WHERE root = ?", (root,))
                    if r["path"] not in seen]
            for path in gone:
                self.remove(path)
            stats["removed"] = len(gone)
        stats["skipped_files"] = skipped[:50]
        return stats

    def remove(self, path: str) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute("DELETE FROM chunks WHERE path = ?", (path,))
            self.conn.execute("DELETE FROM files WHERE path = ?", (path,))
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- querying ----------------------------------------------------------
    def search(self, text: str, *, limit: int = 8, path_prefix: str | None = None) -> tuple[list[dict], str]:
        """Ranked chunks (best first, bm25). All words must match; when nothing
        does, any word may. Returns (hits, 'all'|'any')."""
        for mode in ("all", "any"):
            query = fts_query(text, any_term=(mode == "any"))
            sql = """SELECT c.id, c.path, c.chunk_no, c.start_line, c.end_line, c.text,
                            bm25(chunks_fts) AS score,
                            snippet(chunks_fts, 0, '[', ']', ' … ', 24) AS snippet
                     FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid
                     WHERE chunks_fts MATCH ?"""
            params: list = [query]
            if path_prefix:
                sql += " AND c.path LIKE ? ESCAPE '\\'"
                params.append(path_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
            sql += " ORDER BY score LIMIT ?"
            params.append(int(limit))
            try:
                rows = self.conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                raise RagError(f"the index could not run the query {text!r}: {exc}") from None
            if rows or len(text.split()) < 2:
                return [dict(r, score=round(-r["score"], 4)) for r in rows], mode
        return [], "any"

    def stats(self) -> dict:
        files = self.conn.execute("SELECT COUNT(*), COALESCE(SUM(chunks), 0) FROM files").fetchone()
        return {"path": self.path, "files": files[0], "chunks": files[1],
                "bytes": os.path.getsize(self.path) if os.path.exists(self.path) else 0}

    def checkpoint(self) -> None:
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def index_path(config: dict) -> Path:
    """Where the index lives: [skills.rag] db, relative to knowledge/."""
    name = config["skills"]["rag"]["db"]
    p = Path(os.path.expanduser(name))
    return p if p.is_absolute() else Path(config["paths"]["knowledge"]) / p
