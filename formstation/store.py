"""The station's store: SQLite in the workspace by default, any SQLAlchemy URL via DATABASE_URL.

The schema is created on first use and migrated by version (`meta.schema_version`). Every table
the stations share is declared here, so there is one place that knows the database.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from formstation.safefs import make_private_dir, narrow, private_umask

log = logging.getLogger("formstation.store")
T = TypeVar("T")
STORE_PATIENCE_S = 60.0  # how long a batch waits for the database to come back

SCHEMA_VERSION = 8
DEFAULT_WORKSPACE = "station-data"

md = MetaData()

meta = Table("meta", md, Column("key", String(64), primary_key=True), Column("value", Text))

persons = Table(
    "persons", md,
    Column("person_id", Integer, primary_key=True, autoincrement=True),
    Column("id_number", String(18), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("gender", String(4)),
    Column("school", Text, nullable=False),
    Column("class_name", Text, nullable=False),
    Column("student_no", Text),
    Column("bank", Text),
    Column("photo_path", Text),
    Column("source_file", Text),
    Column("source_row", Integer),
    Column("imported_at", String(32)),
)

roster_imports = Table(
    "roster_imports", md,
    Column("file_sha256", String(64), primary_key=True),
    Column("file_name", Text),
    Column("imported_at", String(32)),
    Column("rows_total", Integer),
    Column("rows_ok", Integer),
    Column("rows_bad", Integer),
)

forms = Table(
    "forms", md,
    Column("form_id", String(16), primary_key=True),
    Column("person_id", Integer, ForeignKey("persons.person_id"), nullable=False, unique=True),
    Column("layout_key", String(64), nullable=False),
    Column("printed_at", String(32)),
    Column("print_file", Text),
    # printed -> received -> review | accepted | rejected
    Column("status", String(16), nullable=False, default="printed"),
    Column("received_at", String(32)),
    Column("decided_at", String(32)),
)

scan_files = Table(
    "scan_files", md,
    Column("sha256", String(64), primary_key=True),
    Column("name", Text),
    Column("size", Integer),
    Column("received_at", String(32)),
    Column("status", String(16)),  # done | quarantined
    Column("pages", Integer),
    Column("reason", Text),
)

pages = Table(
    "pages", md,
    Column("page_id", Integer, primary_key=True, autoincrement=True),
    Column("file_sha256", String(64), nullable=False),
    Column("page_index", Integer, nullable=False),
    Column("form_id", String(16)),
    Column("kind", String(16), nullable=False),  # form | blank | unidentified | foreign | not_in_roster
    Column("rotation", Integer),
    Column("residual_mm", Float),
    Column("identified_by", String(16)),  # barcode | printed_text | reviewer
    Column("image_path", Text),
    Column("created_at", String(32)),
    # JSON: what the reader made of a page that waits unidentified, for when a reviewer matches it
    # (ocr.pipeline.reread_form); personal data, so in the store, never in a file beside the image
    Column("readings", Text),
    Column("layout_key", String(64)),  # the layout the page was read with (its barcode's), None: not known
    Column("reason", String(40)),  # why a page waits unidentified, when the station knows (LAYOUT_UNKNOWN, ...)
    UniqueConstraint("file_sha256", "page_index"),
)

fields = Table(
    "fields", md,
    Column("form_id", String(16), primary_key=True),
    Column("name", String(32), primary_key=True),
    Column("value", Text),
    Column("confidence", Float),
    Column("source", String(16)),  # printed | read | reviewer
    Column("box", Text),
    Column("crop_path", Text),
    Column("suggestion", Text),
    Column("doubt", Text),  # JSON: the boxes of a comb field the reader doubts (ocr.read.doubt_marks)
    # JSON {value, confidence, crop}: what a later scan of the form reads where it differs from a
    # reviewer's value (which it leaves as it is); cleared when a reviewer saves the field
    # (ocr.persist, ocr.rules SCANS_DIFFER, other_scan_value)
    Column("other_scan", Text),
    Column("updated_by", Text),
    Column("updated_at", String(32)),
    Column("reader_version", String(64)),  # the reader version that made a reading (ocr.versions)
)

# The comb boxes a reviewer saved (ocr.labels): the 28x28 cell the reader saw and the character the
# reviewer's value has there, to adapt the reader to the campaign's handwriting (ocr.adapt). Children's
# handwriting: never exported; it goes with the store (and the workspace).
labelled_cells = Table(
    "labelled_cells", md,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("form_id", String(16), nullable=False, index=True),
    Column("field", String(32), nullable=False),
    Column("box", Integer, nullable=False),
    Column("label", String(1), nullable=False),
    Column("cell", LargeBinary, nullable=False),  # 784 bytes, uint8 28x28, ink high
    Column("value", Text, nullable=False),  # the field's value as the reviewer saved it
    Column("rewrite", Integer, nullable=False, default=0),  # 1: the glyph rewritten above a struck-out box
    Column("reviewer", Text, nullable=False),
    Column("reader_version", String(64)),
    Column("saved_at", String(32), nullable=False),
)

reasons = Table(
    "reasons", md,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("form_id", String(16), nullable=False, index=True),
    Column("code", String(40), nullable=False),
    Column("field", String(32)),
    Column("detail", Text),
)

audit = Table(
    "audit", md,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", String(32), nullable=False),
    Column("user_name", Text),
    Column("action", String(32), nullable=False),
    Column("form_id", String(16)),
    Column("field", String(32)),
    Column("old_value", Text),
    Column("new_value", Text),
)

users = Table(
    "users", md,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("pw_hash", Text, nullable=False),
    Column("created_at", String(32)),
)

leases = Table(
    "leases", md,
    Column("form_id", String(16), primary_key=True),
    Column("user_name", Text, nullable=False),
    Column("expires_at", String(32), nullable=False),
)


def _add_column(table: str, column: str, sql_type: str) -> Callable[[Connection], None]:
    """A migration adding a column, unless "create everything" (1) already made the table with it."""
    def run(conn: Connection) -> None:
        if column not in {c["name"] for c in inspect(conn).get_columns(table)}:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))
    return run


# version -> function bringing the schema from version-1 to version. 1 is "create everything".
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: lambda conn: md.create_all(conn),
    2: _add_column("fields", "doubt", "TEXT"),
    3: _add_column("fields", "other_scan", "TEXT"),
    4: _add_column("pages", "readings", "TEXT"),
    5: _add_column("pages", "layout_key", "VARCHAR(64)"),
    6: _add_column("pages", "reason", "VARCHAR(40)"),
    7: _add_column("fields", "reader_version", "VARCHAR(64)"),
    8: lambda conn: labelled_cells.create(conn, checkfirst=True),
}
LEGACY_READINGS_SUFFIX = ".readings.json"  # where version 3 kept an unidentified page's readings


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


ACK_FIELD = "review_ack"  # a form's acknowledged form-level codes, comma-separated (ocr.rules reads them)
# a decided form a person reopened (review_ui.decisions.reopen_form): its value "who: why"; ocr.rules
# keeps the form in review (REOPENED) until a reviewer has gone through every field and cleared it
REOPEN_FIELD = "review_reopened"


def merged_acks(old: str | None, codes: Iterable[str]) -> str:
    """The ACK_FIELD value with `codes` added to those already in `old`."""
    return ",".join(sorted(set(filter(None, (old or "").split(","))) | set(codes)))


def other_scan_reading(column: str | None) -> dict | None:
    """A field row's `other_scan` JSON as a dict with at least "value"; None when there is none (or
    it is unreadable)."""
    if not column:
        return None
    try:
        d = json.loads(column)
    except ValueError:
        return None
    return d if isinstance(d, dict) and "value" in d else None


def other_scan_value(column: str | None) -> str | None:
    """The value in a field row's `other_scan` JSON ('' for an empty reading), None when there is none."""
    d = other_scan_reading(column)
    return None if d is None else str(d["value"] or "")


def upsert_field(conn: Connection, form_id: str, name: str, values: dict) -> None:
    """Write one field row of a form: update it when it exists, insert it otherwise."""
    key = and_(fields.c.form_id == form_id, fields.c.name == name)
    if conn.execute(select(fields.c.name).where(key)).first():
        conn.execute(fields.update().where(key).values(**values))
    else:
        conn.execute(fields.insert().values(form_id=form_id, name=name, **values))


class Store:
    """A handle on the database plus the workspace folder that holds page images and crops."""

    def __init__(self, workspace: Path, engine: Engine) -> None:
        self.workspace = workspace
        self.engine = engine

    @classmethod
    def open(cls, workspace: str | Path | None = None, url: str | None = None) -> Store:
        ws = Path(workspace or os.environ.get("FORMSTATION_WORKSPACE") or DEFAULT_WORKSPACE)
        private_umask()  # the store, page images, crops and exports: children's data, owner-only
        make_private_dir(ws)
        url = url or os.environ.get("DATABASE_URL") or f"sqlite:///{(ws / 'station.db').resolve()}"
        # pre-ping: a pooled connection that a database restart cut is replaced, not used
        engine = create_engine(url, future=True, pool_pre_ping=True)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(ws, engine)
        store.migrate()
        for name in ("station.db", "station.db-wal", "station.db-shm"):
            narrow(ws / name)
        return store

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """One transaction: committed on success, rolled back on any exception."""
        with self.engine.begin() as conn:
            yield conn

    def run(self, work: Callable[[Connection], T], patience_s: float = STORE_PATIENCE_S) -> T:
        """`work(conn)` in one transaction, tried again while the database cannot be reached (a
        server restart, a network blip) for up to `patience_s`; then the error goes up."""
        deadline = time.monotonic() + patience_s
        delay = 0.2
        while True:
            try:
                with self.tx() as conn:
                    return work(conn)
            except OperationalError as e:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("store unreachable (%s); trying again in %.1f s", type(e.orig).__name__, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def run_racing(self, work: Callable[[Connection], T]) -> T:
        """`run`, once more when a unique key was taken by another station's commit between this
        transaction's check and its insert (two stations ingesting the same file at once): the
        second try sees that row (`work` must check before it inserts)."""
        try:
            return self.run(work)
        except IntegrityError as e:
            log.info("another station stored the same row meanwhile (%s); checking again", type(e.orig).__name__)
            return self.run(work)

    def schema_version(self, conn: Connection) -> int:
        if not self.engine.dialect.has_table(conn, "meta"):
            return 0
        v = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
        return int(v or 0)

    def migrate(self) -> None:
        """Bring the schema to SCHEMA_VERSION. Two processes opening a new store at once (the review
        app's sessions, ingest workers) may both find it empty: the one that loses the race fails
        on a table the other just made, and on reading the version again finds nothing left to do."""
        for attempt in range(3):
            try:
                return self._migrate_once()
            except (OperationalError, IntegrityError):
                if attempt == 2:
                    raise
                time.sleep(0.1 * (attempt + 1))

    def _migrate_once(self) -> None:
        with self.tx() as conn:
            current = self.schema_version(conn)
            if current > SCHEMA_VERSION:
                raise RuntimeError(f"store schema {current} is newer than this program ({SCHEMA_VERSION})")
            for v in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[v](conn)
                conn.execute(meta.delete().where(meta.c.key == "schema_version"))
                conn.execute(meta.insert().values(key="schema_version", value=str(v)))
            if 0 < current < 4:
                self._adopt_readings_files(conn)

    def _adopt_readings_files(self, conn: Connection) -> None:
        """Move the readings version 3 kept beside unidentified pages' images into the store."""
        for r in conn.execute(select(pages.c.page_id, pages.c.image_path).where(pages.c.image_path.is_not(None))).all():
            path = (self.workspace / r.image_path).with_suffix(LEGACY_READINGS_SUFFIX)
            if path.is_file():
                conn.execute(pages.update().where(pages.c.page_id == r.page_id)
                             .values(readings=path.read_text(encoding="utf-8")))
                path.unlink()

    def path(self, *parts: str) -> Path:
        p = self.workspace.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
