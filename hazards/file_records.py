"""The one writer of the `files` table: one row per upload, the content in the storage backend
(hazards/files.py) under its SHA-256.

The content is stored before its row is written: a row always has its content, while a crash
between the two leaves at most an object without a row (content-addressed, so an upload of the
same bytes later reuses it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from firetower.refusal import Conn
from hazards.files import FILE_ID_RE, CheckedFile, Storage, new_file_id, store

Reader = Conn | asyncpg.Pool
PUBLIC = "public"  # uploaded_by of a public report's photos


@dataclass(frozen=True, slots=True)
class FileRecord:
    id: str
    sha256: str
    size: int
    content_type: str
    storage_key: str
    original_name: str
    site_id: str | None
    uploaded_by: str
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> FileRecord:
        return cls(**{k: row[k] for k in cls.__slots__})


async def save(conn: Reader, storage: Storage, checked: CheckedFile, *, uploaded_by: str,
               site_id: str | None = None) -> FileRecord:
    """Store the content (once per SHA-256) and record the upload."""
    key = await store(storage, checked)
    row = await conn.fetchrow(
        "INSERT INTO files (id, sha256, size, content_type, storage_key, original_name, "
        "site_id, uploaded_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
        new_file_id(), checked.sha256, checked.size, checked.content_type, key,
        checked.original_name, site_id, uploaded_by[:100])
    return FileRecord.of(row)


async def get(conn: Reader, file_id: str) -> FileRecord | None:
    if not FILE_ID_RE.match(file_id):
        return None
    row = await conn.fetchrow("SELECT * FROM files WHERE id = $1", file_id)
    return None if row is None else FileRecord.of(row)


async def existing(conn: Reader, file_ids: Sequence[str]) -> set[str]:
    """Which of these ids are recorded files."""
    ids = [f for f in file_ids if FILE_ID_RE.match(f)]
    if not ids:
        return set()
    return {r[0] for r in await conn.fetch("SELECT id FROM files WHERE id = ANY($1::text[])",
                                           ids)}


async def document_site(conn: Conn, file_ids: Sequence[str], site_id: str) -> int:
    """The files (not yet tied to a site) now document `site_id`: a public report's photos
    once the report became a hazard of that site. Files of another site are left alone."""
    if not file_ids:
        return 0
    changed = await conn.fetch("UPDATE files SET site_id = $2 WHERE id = ANY($1::text[]) "
                               "AND site_id IS NULL RETURNING id", list(file_ids), site_id)
    return len(changed)
