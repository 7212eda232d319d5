"""Sources an import reads, streamed in bounded batches: Parquet, CSV and JSON lines files
(local paths, globs, or any URL fsspec opens: ``s3://``, ``gs://``, ``https://`` ...; ``.gz``
and other compressions by extension), and a PostgreSQL query.

Guarantees:

* Memory is bounded by the batch: no source is read whole (Parquet by row groups and
  batches, CSV by blocks, JSON lines line by line, SQL through a server-side cursor).
* Every batch says where its rows come from: the file (or ``sql``) and each row's number
  there: the line for CSV (the header is line 1; a quoted field holding a newline shifts
  the lines after it) and JSON lines, the 1-based row for Parquet and SQL.
* CSV and JSON values are read as text (JSON numbers and booleans too), so a column's type
  never depends on which rows came first; Parquet and SQL keep their types.
* A JSON line that is not a JSON object is returned as a rejection with its location, never
  dropped silently.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Iterator

import pyarrow as pa

from recsys.data.validation import Rejection
from recsys.errors import SourceError

FORMATS = ("parquet", "csv", "jsonl")
_EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "csv",
               ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zstd")


@dataclass
class SourceBatch:
    """Raw rows of one source, all columns as read; ``first_record`` is the number of the
    first row in ``source`` (a line, or a row; see the module guarantees); ``rejected``:
    records refused while reading."""

    table: pa.Table
    source: str
    first_record: int
    rejected: list[Rejection] = field(default_factory=list)
    records: list[int] | None = None  # each row's record number, where not consecutive

    def location(self, row: int) -> str:
        number = self.records[row] if self.records is not None else self.first_record + row
        return f"{self.source}:{number}"


def format_of(path: str, given: str | None = None) -> str:
    """The format named by ``given`` or by the path's extension (compression suffixes aside)."""
    if given:
        return given
    name = path.lower()
    for suffix in _COMPRESSIONS:
        name = name.removesuffix(suffix)
    for extension, fmt in _EXTENSIONS.items():
        if name.endswith(extension):
            return fmt
    raise SourceError(f"{path}: cannot tell its format from the extension; name it with "
                      f"--format ({', '.join(FORMATS)})")


def expand(paths: list[str]) -> list[str]:
    """Every file the paths and globs name, in order; SourceError for one that names none."""
    import fsspec

    files: list[str] = []
    for path in paths:
        try:
            found = [f.full_name if "://" in path else f.path
                     for f in fsspec.open_files(path, expand=True)]
        except (OSError, ValueError, ImportError) as exc:
            raise SourceError(f"{path}: cannot be opened ({exc})") from exc
        if not found:
            raise SourceError(f"{path}: no such file (nor files matching it)")
        for name in found:
            if "://" not in path and not _is_file(name):
                raise SourceError(f"{name}: no such file")
        files.extend(found)
    return files


def _is_file(path: str) -> bool:
    from pathlib import Path

    return Path(path).is_file()


def _open(path: str, mode: str = "rb"):
    import fsspec

    try:
        return fsspec.open(path, mode, compression="infer").open()
    except (OSError, ValueError) as exc:
        raise SourceError(f"{path}: cannot be opened ({exc})") from exc


def columns_of(path: str, fmt: str, delimiter: str = ",") -> list[str]:
    """The column names a file holds (for JSON lines: the keys of its first object)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with _open(path) as handle:
            try:
                return list(pq.ParquetFile(handle).schema_arrow.names)
            except pa.ArrowException as exc:
                raise SourceError(f"{path} is not readable Parquet ({exc})") from exc
    if fmt == "csv":
        with _open(path) as raw:
            return _csv_header(raw, path, delimiter)
    for batch in iter_batches(path, fmt, rows=1_000):  # the keys of the first records
        if batch.table.num_columns:
            return list(batch.table.column_names)
    return []


def _csv_header(raw, path: str, delimiter: str) -> list[str]:
    text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
    try:
        header = next(csv.reader(text, delimiter=delimiter), None)
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path} is not valid UTF-8 ({exc})") from exc
    finally:
        text.detach()
    if not header:
        raise SourceError(f"{path} is empty: a CSV source needs a header line")
    return header


def iter_batches(path: str, fmt: str, rows: int = 100_000,
                 delimiter: str = ",") -> Iterator[SourceBatch]:
    """Batches of at most ``rows`` rows of one file (see the module guarantees)."""
    reader = {"parquet": _parquet, "csv": _csv, "jsonl": _jsonl}[fmt]
    yield from reader(path, rows, delimiter)


def _parquet(path: str, rows: int, _delimiter: str) -> Iterator[SourceBatch]:
    import pyarrow.parquet as pq

    with _open(path) as handle:
        try:
            reader = pq.ParquetFile(handle)
        except pa.ArrowException as exc:
            raise SourceError(f"{path} is not readable Parquet ({exc})") from exc
        record = 1
        for batch in reader.iter_batches(batch_size=rows):
            yield SourceBatch(pa.Table.from_batches([batch]), path, record)
            record += batch.num_rows


def _csv(path: str, rows: int, delimiter: str) -> Iterator[SourceBatch]:
    """Arrow's CSV reader while every row is well formed and no value holds a newline (its
    rows then sit on consecutive lines); from the first batch where that fails, Python's
    reader, which knows each record's line and rejects a malformed one by itself."""
    with _open(path) as raw:
        header = _csv_header(raw, path, delimiter)
    if len(set(header)) != len(header):
        repeated = sorted({h for h in header if header.count(h) > 1})
        raise SourceError(f"{path}: the header repeats column(s) {repeated}")
    yielded = 0
    for batch in _csv_arrow(path, header, rows, delimiter):
        if batch is None:  # a row Arrow cannot place on its line: the rest by Python's reader
            yield from _csv_python(path, header, rows, delimiter, skip=yielded)
            return
        yielded += batch.table.num_rows
        yield batch


def _csv_arrow(path: str, header: list[str], rows: int, delimiter: str
               ) -> Iterator[SourceBatch | None]:
    """Batches on consecutive lines; None (then nothing more) at the first batch holding a
    malformed row or a value with a newline."""
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    irregular: list[bool] = []

    def skip(_row) -> str:
        irregular.append(True)
        return "skip"

    read = pcsv.ReadOptions(column_names=header, skip_rows=1, block_size=1 << 22,
                            use_threads=False)
    parse = pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True,
                              ignore_empty_lines=False, invalid_row_handler=skip)
    convert = pcsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                  null_values=[""], strings_can_be_null=True,
                                  quoted_strings_can_be_null=False)  # only an empty field
    record = 2  # the first line after the header
    with _open(path) as raw:
        try:
            reader = pcsv.open_csv(raw, read_options=read, parse_options=parse,
                                   convert_options=convert)
            pending: list[pa.RecordBatch] = []
            size = 0
            for batch in reader:
                if irregular or any(pc.any(pc.match_substring(column, "\n")).as_py()
                                    for column in batch.columns):
                    yield None
                    return
                pending.append(batch)
                size += batch.num_rows
                while size >= rows:
                    table = pa.Table.from_batches(pending)
                    yield SourceBatch(table.slice(0, rows), path, record)
                    record += rows
                    rest = table.slice(rows)
                    pending, size = rest.to_batches(), rest.num_rows
            if size:
                yield SourceBatch(pa.Table.from_batches(pending, schema=reader.schema), path,
                                  record)
        except pa.ArrowInvalid:
            yield None


def _csv_python(path: str, header: list[str], rows: int, delimiter: str, skip: int
                ) -> Iterator[SourceBatch]:
    """Batches from Python's CSV reader after the first ``skip`` records, each row with its
    first line; a record with the wrong number of fields, or malformed, is rejected there."""
    with _open(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        reader = csv.reader(text, delimiter=delimiter, strict=True)
        next(reader)
        width, seen, previous = len(header), 0, reader.line_num
        values: list[list[str]] = []
        lines: list[int] = []
        rejected: list[Rejection] = []
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                seen += 1
                if seen > skip:  # Arrow gave the records before: one it took is counted
                    rejected.append(Rejection(-1, f"malformed CSV: {exc}", {},
                                              f"{path}:{previous + 1}"))
                previous = reader.line_num
                continue
            except UnicodeDecodeError as exc:
                raise SourceError(f"{path} is not valid UTF-8 ({exc})") from exc
            line, previous = previous + 1, reader.line_num
            if not row:
                continue
            seen += 1
            if seen <= skip:
                continue
            if len(row) != width:
                rejected.append(Rejection(-1, f"expected {width} fields, found {len(row)}",
                                          {"fields": row}, f"{path}:{line}"))
                continue
            values.append(row)
            lines.append(line)
            if len(values) >= rows:
                yield _text_batch(header, values, path, lines, rejected)
                values, lines, rejected = [], [], []
        text.detach()
        if values or rejected:
            yield _text_batch(header, values, path, lines, rejected)


def _text_batch(header: list[str], values: list[list[str]], path: str, lines: list[int],
                rejected: list[Rejection]) -> SourceBatch:
    columns = list(zip(*values)) if values else [() for _ in header]
    table = pa.table({name: pa.array([v or None for v in column], pa.string())
                      for name, column in zip(header, columns)})
    return SourceBatch(table, path, lines[0] if lines else 2, rejected, lines)


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        import orjson

        return orjson.dumps(value).decode()
    return str(value)


def _jsonl(path: str, rows: int, _delimiter: str) -> Iterator[SourceBatch]:
    import orjson

    records: list[dict] = []
    numbers: list[int] = []
    rejected: list[Rejection] = []
    with _open(path) as raw:
        for number, line in enumerate(raw, start=1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                value, reason = None, f"not JSON ({exc})"
            else:
                reason = None if isinstance(value, dict) else (
                    f"a JSON {type(value).__name__}, not an object")
            if reason:
                rejected.append(Rejection(-1, reason, {"line": line[:500].decode(
                    "utf-8", "replace").rstrip("\n")}, f"{path}:{number}"))
            else:
                records.append(value)
                numbers.append(number)
            if len(records) >= rows:
                yield SourceBatch(_records_table(records), path, numbers[0], rejected, numbers)
                records, numbers, rejected = [], [], []
        if records or rejected:
            yield SourceBatch(_records_table(records), path, numbers[0] if numbers else 1,
                              rejected, numbers)


def _records_table(records: list[dict]) -> pa.Table:
    """JSON objects as a table of every key seen: values as text, except a key with a list
    among its values, which is a list of text (a single value being a list of one)."""
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    columns = {}
    for name in names:
        values = [r.get(name) for r in records]
        if any(isinstance(v, list) for v in values):  # a single value is a list of one
            columns[name] = pa.array([None if v is None else [_text(x) for x in (
                v if isinstance(v, list) else [v])] for v in values], type=pa.list_(pa.string()))
        else:
            columns[name] = pa.array([_text(v) for v in values], type=pa.string())
    return pa.table(columns) if columns else pa.table({})


def safe_dsn(dsn: str) -> str:
    """A DSN without its password, for messages."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        parts = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - unparseable: say nothing of it
        return "(an unparseable DSN)"
    parts.pop("password", None)
    return make_conninfo(**parts)


def _sql_value(value):
    """A value psycopg returned, as Arrow takes it: UUIDs as text, JSON objects as JSON text,
    decimals as floats."""
    import datetime as dt
    import decimal

    if value is None or isinstance(value, (str, int, float, bool, dt.datetime, dt.date, bytes)):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (dict, list)):
        import orjson

        return orjson.dumps(value, default=str).decode()
    return str(value)


def _connect(dsn: str):
    import psycopg

    try:
        return psycopg.connect(dsn)
    except psycopg.Error as exc:
        raise SourceError(f"--events-sql: cannot connect to {safe_dsn(dsn)} "
                          f"({str(exc).strip()})") from exc


def sql_columns(dsn: str, query: str) -> list[str]:
    """The columns a query returns, without fetching a row."""
    import psycopg

    with _connect(dsn) as connection, connection.cursor() as cursor:
        try:
            cursor.execute(f"SELECT * FROM ({query}) AS recsys_import LIMIT 0")
        except psycopg.Error as exc:
            raise SourceError(f"--events-sql: the query failed ({str(exc).strip()})") from exc
        return [c.name for c in cursor.description]


def sql_batches(dsn: str, query: str, rows: int = 100_000) -> Iterator[SourceBatch]:
    """Batches of a PostgreSQL query's rows through a server-side cursor (the query runs
    once; rows are fetched ``rows`` at a time). Locations read ``sql:N`` (the row's 1-based
    number in the result)."""
    import psycopg

    with _connect(dsn) as connection:
        with connection.cursor(name="recsys_import") as cursor:
            record = 1
            try:
                cursor.execute(query)
                while True:
                    chunk = cursor.fetchmany(rows)
                    if not chunk:
                        break
                    names = [c.name for c in cursor.description]
                    if len(set(names)) != len(names):
                        raise SourceError(f"--events-sql: the query returns column names more "
                                          f"than once ({names}); name them apart with AS")
                    columns = {name: pa.array([_sql_value(r[i]) for r in chunk])
                               for i, name in enumerate(names)}
                    yield SourceBatch(pa.table(columns), "sql", record)
                    record += len(chunk)
            except psycopg.Error as exc:
                raise SourceError(f"--events-sql: the query failed ({str(exc).strip()})"
                                  ) from exc


__all__ = ["SourceBatch", "FORMATS", "format_of", "expand", "columns_of", "iter_batches",
           "sql_batches", "sql_columns", "safe_dsn"]
