"""A results table written as rows arrive, and resumed: each finished row is appended to a
journal beside the output (one JSON line, flushed), and the table (CSV or Parquet) is written
whole, atomically, at the end. A run that dies keeps its journal; the next run with the same
``--out`` reads the table and the journal and skips every row done without an error."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io import atomic_path, atomic_write_bytes
from ..parallel import SCALE_INSTALL

FORMATS = (".csv", ".parquet")


def journal_path(out: Path) -> Path:
    return out.with_name(out.name + ".journal.jsonl")


def _read_table(out: Path) -> list[dict[str, Any]]:
    if not out.is_file():
        return []
    if out.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(out).to_pylist()
    with out.open(newline="", encoding="utf-8") as f:
        return [{k: (v if v != "" else None) for k, v in row.items()} for row in csv.DictReader(f)]


class ResultTable:
    """The rows of one batch run keyed by ``key`` (the file), with what earlier runs finished.

    Parameters
    ----------
    out : a ``.csv`` or ``.parquet`` path.
    columns : the table's columns in order (a row's other keys are dropped).
    """

    def __init__(self, out: str | Path, columns: Sequence[str], key: str = "file"):
        self.out, self.columns, self.key = Path(out), list(columns), key
        if self.out.suffix.lower() not in FORMATS:
            raise ValueError(f"{self.out}: --out must end in .csv or .parquet")
        if self.out.suffix.lower() == ".parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise ValueError(
                    f"{self.out}: a .parquet table needs pyarrow, which this install left out: {SCALE_INSTALL}; "
                    "or write a .csv"
                ) from None
        self.rows: dict[str, dict[str, Any]] = {}
        for row in _read_table(self.out) + self._read_journal():
            self.rows[str(row[key])] = row
        self._journal = None

    def _read_journal(self) -> list[dict[str, Any]]:
        path = journal_path(self.out)
        if not path.is_file():
            return []
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # the last line of a run killed while writing it
        return rows

    def done(self, file: str) -> bool:
        """Whether ``file`` has a row without an error (an error row is tried again)."""
        row = self.rows.get(str(file))
        return row is not None and not row.get("error")

    def add(self, row: dict[str, Any]) -> None:
        """Keep ``row`` and append it to the journal at once (a crash loses no finished row)."""
        row = {c: row.get(c) for c in self.columns}
        self.rows[str(row[self.key])] = row
        if self._journal is None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self._journal = journal_path(self.out).open("a", encoding="utf-8")
        self._journal.write(json.dumps(row, allow_nan=True) + "\n")
        self._journal.flush()

    def write(self, order: Sequence[str] = ()) -> Path:
        """The whole table, atomically: rows of ``order`` (the inputs) first, in that order, then
        earlier runs' other rows; then the journal is removed."""
        first = [str(k) for k in order if str(k) in self.rows]
        keys = first + [k for k in self.rows if k not in set(first)]
        rows = [{c: self.rows[k].get(c) for c in self.columns} for k in keys]
        if self.out.suffix.lower() == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            with atomic_path(self.out) as tmp:
                pq.write_table(pa.Table.from_pylist(rows, schema=_schema(rows, self.columns)), tmp)
        else:
            buf = io.StringIO()
            writer = csv.DictWriter(buf, self.columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows({c: _cell(r[c]) for c in self.columns} for r in rows)
            atomic_write_bytes(self.out, buf.getvalue().encode())
        self.close()
        journal_path(self.out).unlink(missing_ok=True)
        return self.out

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def _cell(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return v


def _schema(rows: list[dict[str, Any]], columns: list[str]) -> Any:
    """Each column's type from its values (a column that is all None is a string column)."""
    import pyarrow as pa

    fields = []
    for c in columns:
        values = [r[c] for r in rows if r[c] is not None]
        if values and all(isinstance(v, bool) for v in values):
            kind = pa.bool_()
        elif values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            kind = pa.float64()
        else:
            kind = pa.string()
        fields.append(pa.field(c, kind))
    return pa.schema(fields)


__all__ = ["FORMATS", "ResultTable", "journal_path"]
