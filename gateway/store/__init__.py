"""The store: one SQLAlchemy engine per process, schema managed by Alembic migrations."""
