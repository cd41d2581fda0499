"""Many rows of one model in one statement, without building a model instance per row.

Bulk jobs write hundreds of emails, parties, attachment links and events per chunk.
Django's ``bulk_create`` prepares every field of every instance; here the columns that
are the same for the whole chunk (defaults, timestamps, the job's ids) are prepared
once from a prototype instance, and only the columns that vary are given per row, as
values the database takes as they are (text, numbers, ``None``). One statement per
call: ``COPY ... FROM STDIN`` on PostgreSQL (several times faster than an INSERT of many
rows), ``executemany`` elsewhere; either passes through Django's execute wrappers and
query log, so query counts see it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection, models
from django.db.backends.utils import CursorDebugWrapper


def _column(field: models.Field[Any, Any]) -> str:
    """A concrete field's column (the stubs allow ``None``, for fields that have none)."""
    assert field.column is not None
    return field.column


class RowWriter:
    def __init__(self, model: type[models.Model], varying: Sequence[str], **common: Any):
        proto = model(**common)
        by_attname = {f.attname: f for f in model._meta.concrete_fields}
        unknown = set(varying) - set(by_attname)
        if unknown:
            raise ValueError(f"{model.__name__} has no columns {sorted(unknown)}")
        constant = [
            f for f in model._meta.concrete_fields if f.attname not in varying and not f.primary_key
        ]
        columns = [_column(by_attname[name]) for name in varying] + [_column(f) for f in constant]
        self.constants = tuple(
            f.get_db_prep_save(f.pre_save(proto, add=True), connection) for f in constant
        )
        quote = connection.ops.quote_name
        # Names from the model's own metadata, quoted; every value is a parameter.
        names, marks = ", ".join(map(quote, columns)), ", ".join(["%s"] * len(columns))
        table = quote(model._meta.db_table)
        self.sql = f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608
        self.copy_sql = f"COPY {table} ({names}) FROM STDIN"

    def insert(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        constants = self.constants
        with connection.cursor() as cursor:
            if connection.vendor != "postgresql":
                cursor.executemany(self.sql, [row + constants for row in rows])
                return

            def copy(sql: str, params: Any, many: bool, context: Any) -> None:
                with cursor.cursor.copy(sql) as copy:
                    for row in rows:
                        copy.write_row(row + constants)

            # The path ``executemany`` takes: execute wrappers, then the query log.
            if isinstance(cursor, CursorDebugWrapper):
                with cursor.debug_sql(self.copy_sql, rows, many=True):
                    cursor._execute_with_wrappers(self.copy_sql, rows, True, copy)
            else:
                cursor._execute_with_wrappers(self.copy_sql, rows, True, copy)


def allocate_ids(model: type[models.Model], count: int) -> list[int]:
    """``count`` new primary keys for ``model``, taken before its rows are inserted.

    PostgreSQL: from the table's sequence, safe under concurrency. SQLite: after the
    highest id ever used; the caller's transaction must already hold SQLite's write lock
    (it has written something), so no other connection can insert meanwhile.
    """
    if count <= 0:
        return []
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [table, model._meta.pk.column, count],
            )
            return [row[0] for row in cursor.fetchall()]
        if connection.vendor == "sqlite":
            quote = connection.ops.quote_name
            pk, name = quote(_column(model._meta.pk)), quote(table)
            sql = f"SELECT MAX({pk}) FROM {name} UNION ALL SELECT seq FROM sqlite_sequence WHERE name = %s"  # noqa: S608, E501
            cursor.execute(sql, [table])
            start = max((row[0] or 0 for row in cursor.fetchall()), default=0) + 1
            return list(range(start, start + count))
    raise NotImplementedError(f"allocate_ids does not support {connection.vendor}")
