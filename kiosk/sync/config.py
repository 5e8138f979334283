"""Where the store server is and how to log in (``[store]`` settings); never logs a password.

``[store] server`` is a ``postgresql://user@host[:port]/database`` URL *without* a password.
The password comes from ``[store] password_file`` (the first line of that file), else from
``$KIOSK_STORE_PASSWORD``, else libpq's own ``$PGPASSWORD`` / ``~/.pgpass``.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from kiosk.settings import STORE_PASSWORD_ENV as PASSWORD_ENV
from kiosk.settings import check_server_url


class StoreConfigError(ValueError):
    """The store settings cannot be used (the message never holds the password)."""


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


def read_password(password_file: str | None) -> str | None:
    """The password: first line of ``password_file``, else $KIOSK_STORE_PASSWORD, else None
    (libpq then looks at $PGPASSWORD and ~/.pgpass itself)."""
    if password_file:
        path = Path(password_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise StoreConfigError(f"[store] password_file {path}: cannot read it "
                                   f"({e.strerror or e})") from None
        lines = text.splitlines()
        return lines[0] if lines else ""
    return os.environ.get(PASSWORD_ENV) or None


@dataclass(frozen=True)
class StoreConfig:
    url: str
    password: str | None
    kiosk_name: str
    price_change_in_basket: str = "apply"

    def __repr__(self) -> str:  # never the password
        return (f"StoreConfig(url={redact(self.url)!r}, kiosk_name={self.kiosk_name!r}, "
                f"price_change_in_basket={self.price_change_in_basket!r})")


def store_config(settings, server: str | None = None) -> StoreConfig | None:
    """The store server from ``settings`` (``server`` overrides ``[store] server``); None
    when no server is set (the kiosk works alone)."""
    store = getattr(settings, "store", None)
    url = server or getattr(store, "server", None)
    if not url:
        return None
    try:
        url = check_server_url(url)
    except ValueError as e:
        raise StoreConfigError(f"store server {redact(str(url))} {e}") from None
    return StoreConfig(
        url=url,
        password=read_password(getattr(store, "password_file", None)),
        kiosk_name=getattr(store, "kiosk_name", None) or socket.gethostname(),
        price_change_in_basket=getattr(store, "price_change_in_basket", None) or "apply")


def connect(url: str, password: str | None, *, autocommit: bool = False,
            connect_timeout: int = 5):
    """A psycopg connection to the store server (search_path kiosk, TCP keepalives so that a
    vanished server is noticed within seconds)."""
    import psycopg

    kwargs = dict(autocommit=autocommit, connect_timeout=connect_timeout,
                  application_name="kiosk", keepalives=1, keepalives_idle=5,
                  keepalives_interval=2, keepalives_count=3,
                  options="-c search_path=kiosk,public -c statement_timeout=60000")
    if password is not None:
        kwargs["password"] = password
    return psycopg.connect(url, **kwargs)
