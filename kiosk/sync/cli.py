"""``kiosk store ...``: the store server from the command line.

    kiosk store init   [--server URL]          create or migrate the server schema
    kiosk store status [--server URL] [--json] kiosks, last contact, sync lag, outbox
    kiosk store sync   [--server URL] [--db DB] push this kiosk's outbox and pull, once

The server comes from ``[store] server`` in the settings (``--server`` overrides it), the
password from ``[store] password_file`` or ``$KIOSK_STORE_PASSWORD`` (never from the command
line, never printed).
"""
from __future__ import annotations

import json
import sys


def add_store_parser(sub) -> None:
    s = sub.add_parser("store", help="the store's PostgreSQL server shared by its kiosks "
                                     "(init, status, sync)")
    st = s.add_subparsers(dest="store_command", required=True)
    for name, what in (("init", "create or migrate the server schema"),
                       ("status", "kiosks, last contact, sync lag and pending outbox"),
                       ("sync", "push this kiosk's outbox and pull the store's changes once")):
        p = st.add_parser(name, help=what)
        p.add_argument("--server", metavar="URL",
                       help="postgresql://user@host[:port]/database (default: [store] server)")
        if name == "status":
            p.add_argument("--json", action="store_true")
        if name == "sync":
            p.add_argument("--db", help="catalogue database")
        p.set_defaults(func=cmd_store)


def _settings():
    from kiosk.cli import _CONTEXT
    from kiosk.settings import Settings

    return _CONTEXT.get("settings") or Settings()


def cmd_store(args) -> int:
    import psycopg

    from kiosk.cli import CliError
    from kiosk.sync import server as srv
    from kiosk.sync.config import StoreConfigError, connect, redact, store_config

    try:
        cfg = store_config(_settings(), args.server)
    except StoreConfigError as exc:
        raise CliError(str(exc)) from None
    if cfg is None:
        raise CliError("no store server: set [store] server in the settings (or --server URL)")
    where = redact(cfg.url)
    try:
        if args.store_command == "init":
            with connect(cfg.url, cfg.password) as conn:
                before, after = srv.init_server(conn)
            if before == after:
                print(f"store server {where}: schema version {after}, up to date")
            else:
                print(f"store server {where}: schema version {before} -> {after}")
            return 0
        if args.store_command == "status":
            from kiosk.sync.status import format_status, store_status

            with connect(cfg.url, cfg.password) as conn:
                srv.check_schema(conn)
                st = store_status(conn)
            if args.json:
                print(json.dumps(st, ensure_ascii=False, indent=2))
            else:
                print(format_status(st))
            return 0
        if args.store_command == "sync":
            from kiosk.cli import resolve_db
            from kiosk.sync.client import StoreClient

            db = resolve_db(args.db, must_exist=True)
            client = StoreClient(db, cfg.url, password=cfg.password, kiosk_name=cfg.kiosk_name,
                                 model_id=_model_id(db))
            try:
                client.connect()
                sent = client.push()
                res = client.pull()
                client.heartbeat()
            finally:
                client.close()
            print(f"{db}: sent {sent} changes, applied {len(res.products)} product changes, "
                  f"{res.views_added} views (+{res.views_pending} waiting for this model), "
                  f"{res.calls} calls; at change {res.last_change_no}")
            return 0
    except srv.ServerSchemaError as exc:
        raise CliError(f"store server {where}: {exc}") from None
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise CliError(f"store server {where}: {first}") from None
    raise CliError(f"unknown store command {args.store_command!r}")  # pragma: no cover


def _model_id(db) -> str | None:
    """The model of the catalogue's gallery (the one the kiosk on it uses), without loading it."""
    from kiosk.catalog import Catalog

    with Catalog(db) as cat:
        rows = cat._rows("SELECT model_id, COUNT(*) FROM gallery_images GROUP BY model_id "
                         "ORDER BY 2 DESC LIMIT 1")
    return rows[0][0] if rows else None


if __name__ == "__main__":  # pragma: no cover
    from kiosk.cli import main

    sys.exit(main(["store", *sys.argv[1:]]))
