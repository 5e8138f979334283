"""Many kiosks, one catalogue: the store's PostgreSQL server and each kiosk's sync worker.

* :mod:`kiosk.sync.server` — the server schema (numbered migrations, ``kiosk store init``) and
  what the server does with each pushed change (idempotence, change numbers, conflict rules).
* :mod:`kiosk.sync.local` — the kiosk side in its SQLite catalogue (catalogue migration 8):
  outbox written by triggers, UUIDs, sync state, the store's calls.
* :mod:`kiosk.sync.client` — push, pull, heartbeat, and :class:`~kiosk.sync.client.SyncWorker`
  (a thread: LISTEN/NOTIFY wake-ups, back-off while the server is away).
* :mod:`kiosk.sync.store_calls` — the store's calls for the cashier, from every kiosk.
* :mod:`kiosk.sync.status` — ``kiosk store status``; ``kiosk store`` is in :mod:`kiosk.cli`.
* :mod:`kiosk.sync.config` — ``[store]`` settings, the password (never logged), connections.
* :mod:`kiosk.sync.bench` — ``kiosk bench --store N``.
* :mod:`kiosk.sync.pgserver` — a throw-away local PostgreSQL (tests, the bench).

No Qt here (the window's side: :mod:`kiosk.ui.store_sync`, :mod:`kiosk.ui.store_tab`).  Without
``[store] server`` none of this runs and the kiosk works alone.
"""
