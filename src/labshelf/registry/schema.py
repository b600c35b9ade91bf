"""The registry's tables (SQLAlchemy Core), the same for SQLite and PostgreSQL.

Changing anything here needs an Alembic migration in ``migrations/versions``
and a bump of ``SCHEMA_VERSION``; ``tests/test_migrate.py`` checks both agree.

Times are float seconds since the epoch (UTC): dialect-neutral, cheap to
compare and to turn into a pandas column for 10,000 runs at once.  JSON
documents (params, data IDs, shapes, locations, options) are stored as TEXT
written by ``json.dumps(sort_keys=True)``, so equal documents have equal text
and a data ID can take part in a unique key.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

#: Alembic revision of the newest schema this labshelf knows.
SCHEMA_VERSION = "0005"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (fast,
# autoincrementing); PostgreSQL wants a 64-bit identity for a feed that grows.
_BigId = BigInteger().with_variant(Integer(), "sqlite")

shelf_info = Table(
    "shelf_info",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("experiment", String(255), nullable=False),
    Column("params", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("started", Float, nullable=False),
    Column("ended", Float),
    Column("host", String(255), nullable=False),
    Column("user", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("error", Text),
    # What people add by hand (annotations) never touches the run's data.
    Column("comment", Text),
    Index("ix_runs_experiment", "experiment"),
    Index("ix_runs_started", "started"),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("run", Integer, ForeignKey("runs.number", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("data_id", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("shape", Text),
    Column("dtype", String(64)),
    Column("nbytes", BigInteger, nullable=False),
    # What the run table shows, so it never opens a data file: see
    # datastore.formatter.Summary for the meaning of each column.
    Column("summary_kind", String(16), nullable=False),
    Column("summary_value", Float),
    Column("summary_text", Text),
    Column("thumbnail", LargeBinary),
    # A small value lives here as JSON; a large one in data files under the
    # datastore root (a JSON list of paths relative to it).
    Column("inline", Text),
    Column("location", Text),
    Column("options", Text),
    Column("version", Integer, nullable=False),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
    # The lookup by (run, name, data ID) is this index: one B-tree probe.
    UniqueConstraint("run", "name", "data_id"),
    # By name with the summary kind: finds a column's datasets, and tells a
    # numeric column from a text one, from the index alone (RunView).
    Index("ix_datasets_name_kind", "name", "data_id", "summary_kind"),
)

broadcasts = Table(
    "broadcasts",
    metadata,
    # persist=False puts: never stored as datasets; this slot remembers that
    # the name was broadcast, and its latest small value for late watchers.
    Column("run", Integer, ForeignKey("runs.number", ondelete="CASCADE"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("data_id", Text, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("inline", Text),
    Column("updated", Float, nullable=False),
)

changes = Table(
    "changes",
    metadata,
    Column("seq", _BigId, primary_key=True, autoincrement=True),
    Column("time", Float, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("run", Integer),
    Column("name", String(255)),
    Column("data_id", Text),
    Column("version", Integer),
    Column("payload", Text),
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run", Integer, ForeignKey("runs.number", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(255), primary_key=True),
    Index("ix_run_tags_tag", "tag"),
)

user_columns = Table(
    "user_columns",
    metadata,
    # Columns users add to the run table; ``type`` is number (float64), int
    # (int64), text or bool.
    Column("name", String(255), primary_key=True),
    Column("type", String(8), nullable=False),
    Column("created", Float, nullable=False),
)

user_values = Table(
    "user_values",
    metadata,
    Column("run", Integer, ForeignKey("runs.number", ondelete="CASCADE"), primary_key=True),
    Column("column", String(255), ForeignKey("user_columns.name", ondelete="CASCADE"), primary_key=True),
    # One of the three, by the column's type: a float or a bool (0/1), an
    # int (exact, where a float would round beyond 2**53), a text.
    Column("value_num", Float),
    Column("value_text", Text),
    Column("value_int", BigInteger),
)

history = Table(
    "history",
    metadata,
    # Every annotation change: who (OS user), when, and the old and new values as JSON.
    # Changes of the shelf as a whole (display metadata, column tags, the
    # logbook) have no run (schema 0005): ``field`` says what changed.
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("run", Integer, ForeignKey("runs.number", ondelete="CASCADE")),
    Column("field", String(255), nullable=False),
    Column("old", Text),
    Column("new", Text),
    Column("user", String(255), nullable=False),
    Column("time", Float, nullable=False),
    Index("ix_history_run", "run"),
)

derived = Table(
    "derived",
    metadata,
    # Bookkeeping of derived variables per run: what a result was computed
    # from (source hash, input dataset versions), or the error it raised.
    Column("run", Integer, ForeignKey("runs.number", ondelete="CASCADE"), primary_key=True),
    Column("variable", String(255), primary_key=True),
    Column("source_hash", String(64), nullable=False),
    Column("inputs", Text, nullable=False),
    Column("status", String(8), nullable=False),
    Column("error", Text),
    Column("updated", Float, nullable=False),
)

collections = Table(
    "collections",
    metadata,
    # TAGGED and CHAINED collections, and RUN collections ("run/12") that were
    # given documentation or a processing stage (a run needs no row to exist).
    Column("name", String(255), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("doc", Text),
    Column("stage", String(64)),
    Column("created", Float, nullable=False),
)

collection_chains = Table(
    "collection_chains",
    metadata,
    # A chain's children in search order.  Children are names, not keys: a
    # chain of an output repository may name collections of its inputs.
    Column("chain", String(255), ForeignKey("collections.name", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("child", String(255), nullable=False),
)

collection_members = Table(
    "collection_members",
    metadata,
    # The datasets of a TAGGED collection: at most one per (name, data ID),
    # so a lookup in it is one probe of the unique index.
    Column("collection", String(255), ForeignKey("collections.name", ondelete="CASCADE"), primary_key=True),
    Column("dataset", _BigId, ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("data_id", Text, nullable=False),
    UniqueConstraint("collection", "name", "data_id"),
    Index("ix_collection_members_dataset", "dataset"),
)

dataset_meta = Table(
    "dataset_meta",
    metadata,
    # What a dataset's numbers mean, per name (the same for every run, like a
    # column header): data_id "{}" describes the name as a whole, another data
    # ID only that one (it wins over the name's).  A field left NULL is unsaid.
    # ``scale`` has ARTIQ's meaning: the shown value is the stored one / scale.
    Column("name", String(255), primary_key=True),
    Column("data_id", Text, primary_key=True),
    Column("unit", String(64)),
    Column("scale", Float),
    Column("precision", Integer),
    Column("title", Text),
    Column("description", Text),
    Column("updated", Float, nullable=False),
    Column("user", String(255), nullable=False),
)

column_tags = Table(
    "column_tags",
    metadata,
    # Tags of run-table columns (a dataset name or a user column), not of runs.
    Column("name", String(255), primary_key=True),
    Column("tag", String(255), primary_key=True),
    Index("ix_column_tags_tag", "tag"),
)

logbook = Table(
    "logbook",
    metadata,
    # Time-stamped comments not tied to a run; ``time`` is when it happened
    # (given or now), ``created``/``updated`` when it was written and edited.
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("time", Float, nullable=False),
    Column("text", Text, nullable=False),
    Column("user", String(255), nullable=False),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
    Index("ix_logbook_time", "time"),
)
