"""A database as a data folder: the URL (never a password) and the schema, in one small file.

Every part of the app -- projects, the store's data path, exports, ``looks_like_sequences``
-- knows its data by a folder. Rather than teach each of them URLs, ``aeep-tui label
postgresql://me@db:5432/cdm --schema cdm`` makes (or finds again) a folder under the app's
data directory whose only file, ``aeep-database.json``, names the URL and the schema. The
folder's path is a hash of both, so the same URL and schema give the same folder, hence the
same project: a project on a database remembers where its data lives and opens again. The
OMOP reader sees the file and reads the database instead of files.

The password is never part of it: it comes from ``PGPASSWORD`` or ``~/.pgpass``, which libpq
reads itself; a URL with a password is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from aeep_core import locations
from aeep_core.pool import DataError

DATABASE_FILE = "aeep-database.json"
SCHEMES = ("postgresql", "postgres")
_SCHEMA = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


@dataclass(frozen=True)
class Database:
    """Where an OMOP CDM lives: a password-free ``postgresql://`` URL and the CDM's schema."""

    url: str
    schema: str

    def __str__(self) -> str:
        return f"{self.url} (schema {self.schema})"


def is_database_url(text: str | Path) -> bool:
    """Whether ``text`` is a ``postgresql://`` (or ``postgres://``) URL rather than a path."""
    return isinstance(text, str) and text.split("://", 1)[0].lower() in SCHEMES and "://" in text


def shown_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: what messages may print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def parse_database(url: str, schema: str = "public") -> Database:
    """Check ``url`` and ``schema`` and return them as a :class:`Database`; a one-line :class:`DataError` else.

    A password in the URL is refused: it would sit in the shell history, the process list
    and the project's files. libpq takes it from ``PGPASSWORD`` or ``~/.pgpass`` instead.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise DataError(f"{shown_url(url)}: not a PostgreSQL URL; write postgresql://USER@HOST:PORT/DATABASE")
    if parts.password is not None:
        raise DataError(
            f"{shown_url(url)}: the URL holds a password; remove it and set PGPASSWORD or a ~/.pgpass line "
            "(host:port:database:user:password, chmod 600) instead"
        )
    if "password" in parts.query.lower():
        raise DataError(f"{url.split('?', 1)[0]}: password in the URL's options; set PGPASSWORD or ~/.pgpass instead")
    if not parts.hostname or not parts.path.strip("/"):
        raise DataError(f"{url}: give host and database, as postgresql://USER@HOST:PORT/DATABASE")
    try:
        parts.port  # noqa: B018 -- raises on a port that is not a number
    except ValueError:
        raise DataError(f"{url}: the port is not a number; write postgresql://USER@HOST:PORT/DATABASE") from None
    if not _SCHEMA.match(schema):
        raise DataError(f"{url}: --schema {schema!r} is not a schema name (letters, digits, _); give the CDM's schema")
    return Database(url, schema)


def database_folder(db: Database) -> Path:
    """The data folder that stands for ``db`` (made when missing): always the same for the same URL and schema."""
    key = json.dumps({"url": db.url, "schema": db.schema}, sort_keys=True)
    parts = urlsplit(db.url)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{parts.path.strip('/')}-{db.schema}@{parts.hostname}")
    folder = locations.database_folder(f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / DATABASE_FILE
    if not target.is_file():
        target.write_text(key + "\n", encoding="utf-8")
    return folder


def is_database_folder(folder: Path | str) -> bool:
    """Whether ``folder`` stands for a database (holds ``aeep-database.json``)."""
    return (Path(folder) / DATABASE_FILE).is_file()


def read_database_folder(folder: Path | str) -> Database:
    """The :class:`Database` a folder stands for."""
    path = Path(folder) / DATABASE_FILE
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        return parse_database(str(obj["url"]), str(obj["schema"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: unreadable ({exc}); run the command again with the database URL and --schema") from None


def data_location(data: str | Path, schema: str | None = None) -> Path:
    """What a command's DATA argument names, as a folder: a path as given, or a URL's database folder.

    ``schema`` defaults to ``public``, PostgreSQL's own default; a schema given with a path
    is an error (it would be silently ignored).
    """
    if is_database_url(data):
        return database_folder(parse_database(str(data), schema or "public"))
    if schema is not None:
        raise DataError(f"{data}: --schema is for a postgresql:// URL; a folder needs none")
    return Path(data).expanduser()
