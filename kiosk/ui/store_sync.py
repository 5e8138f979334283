"""The kiosk window and the store server: the sync worker's results on the GUI thread.

Started by :mod:`kiosk.ui.app` when ``[store] server`` is set (nothing runs otherwise).  The
worker (:class:`kiosk.sync.client.SyncWorker`) runs on its own thread; after each pull that
changed something the engine sees the new products, prices and gallery views at once
(:func:`kiosk.sync.client.refresh_engine`), then on the GUI thread the basket is refreshed, calls
of this kiosk closed on another kiosk are published on the call board, and a price changed for
an item in the open basket is announced:

* ``[store] price_change_in_basket = "apply"`` (default): the basket shows the new price at
  once, with a notice naming the product, the old and the new price;
* ``"keep"``: the basket keeps the prices it had; the notice says the new price applies to the
  next customer, and the engine takes it once the tray is empty.
"""
from __future__ import annotations

import logging
import threading

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QLabel

log = logging.getLogger(__name__)


def _money(fen) -> str:
    if fen is None:
        return "-"
    from kiosk.money import format_amount, format_price

    try:
        return format_price(int(fen))
    except Exception:  # noqa: BLE001 - e.g. more than the kiosk accepts: the plain amount
        return format_amount(int(fen))


class StoreSync(QObject):
    pulled = Signal(object)  # PullResult, from the worker thread to the GUI thread
    notice = Signal(str)

    def __init__(self, window, parts, cfg) -> None:
        super().__init__(window)
        from kiosk.assemble import store_client
        from kiosk.sync.client import SyncWorker

        self.window, self.parts, self.cfg = window, parts, cfg
        self.engine = parts.engine
        self.session = parts.session
        self.controller = window.controller
        self.keep = cfg.price_change_in_basket == "keep"
        self._basket: tuple[str, ...] = ()
        self._deferred = False
        self._lock = threading.Lock()
        self.client = store_client(parts, cfg)
        self.worker = SyncWorker(self.client, on_pulled=self._pulled_worker_thread)
        self.pulled.connect(self._pulled_gui, Qt.ConnectionType.QueuedConnection)
        self.controller.stateChanged.connect(self._on_state)
        board = getattr(self.session, "calls", None)
        self._unsubscribe = board.subscribe(lambda _e: self.worker.poke()) if board else None
        window.finished.connect(lambda _tx: self.worker.poke())
        self.label = QLabel(window, objectName="StoreNotice")
        self.label.setWordWrap(True)
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setStyleSheet("background: #fff3cd; color: #5c4400; border: 1px solid #e0b84c;"
                                 " border-radius: 8px; padding: 10px; font-size: 18px;")
        self.label.hide()
        self._hide = QTimer(self, singleShot=True, interval=10000, timeout=self.label.hide)
        self._tick = QTimer(self, interval=1000, timeout=self._check_deferred)
        self._tick.start()
        self.notice.connect(self.show_notice)
        self.controller.store_sync = self  # the staff page's Store tab finds it here
        self.worker.start()

    # ------------------------------------------------------------------ threads
    def _on_state(self, state) -> None:
        with self._lock:
            self._basket = tuple(i.sku for i in getattr(state, "items", ()) if i.sku)

    def _pulled_worker_thread(self, res) -> None:
        from kiosk.sync.client import refresh_engine

        engine = self.engine
        with self._lock:
            basket = set(self._basket)
        keep = {}
        if self.keep and basket:
            charged = {s: engine.product(s) for s in basket}
            for sku, _old, new in res.products:
                if charged.get(sku) is not None and new is not None \
                        and charged[sku].price != new.price:
                    keep[sku] = charged[sku]
        refresh_engine(engine, keep)
        if keep:
            self._deferred = True
        self.pulled.emit(res)

    def _pulled_gui(self, res) -> None:
        try:
            self.controller.notify_catalogue_changed()
        except Exception:  # noqa: BLE001
            log.exception("refreshing after a store change")
        board = getattr(self.session, "calls", None)
        if board is not None and res.resolved_here:
            from kiosk.checkout.calls import CallEvent

            for cid in res.resolved_here:
                call = board.get(cid)
                if call is not None:
                    board._publish(CallEvent("resolved", call))
        with self._lock:
            basket = set(self._basket)
        changed = [(sku, old, new) for sku, old, new in res.products
                   if sku in basket and old is not None and new is not None
                   and old.price != new.price]
        if changed:
            what = ", ".join(f"{new.name} {_money(old.price)} → {_money(new.price)}"
                             for _sku, old, new in changed)
            if self.keep:
                self.show_notice(self.tr("Price changed by the store: %1. This basket keeps "
                                         "its prices; the new price applies to the next "
                                         "customer.").replace("%1", what))
            else:
                self.show_notice(self.tr("Price changed by the store: %1. The basket shows the "
                                         "new price.").replace("%1", what))

    def _check_deferred(self) -> None:
        if not self._deferred:
            return
        with self._lock:
            empty = not self._basket
        if empty:
            from kiosk.sync.client import refresh_engine

            self._deferred = False
            refresh_engine(self.engine)
            self.controller.notify_catalogue_changed()

    # ------------------------------------------------------------------ view
    def show_notice(self, text: str) -> None:
        w = self.window
        width = min(720, max(320, w.width() - 40))
        self.label.setText(text)
        self.label.setFixedWidth(width)
        self.label.adjustSize()
        self.label.move((w.width() - width) // 2, 16)
        self.label.raise_()
        self.label.show()
        self._hide.start()

    def status(self) -> dict:
        return self.worker.status()

    def stop(self) -> None:
        self._tick.stop()
        if self._unsubscribe:
            self._unsubscribe()
        self.worker.stop()
        self.client.close()


def start_store_sync(window, parts, settings) -> StoreSync | None:
    """The store sync of this kiosk, or None when no store server is set (or it cannot be
    used: logged, and the kiosk runs alone)."""
    from kiosk.sync.config import StoreConfigError, store_config

    try:
        cfg = store_config(settings)
    except StoreConfigError as exc:
        log.error("store server not used: %s", exc)
        return None
    if cfg is None:
        return None
    log.info("store server %r: this kiosk is %r", cfg, cfg.kiosk_name)
    return StoreSync(window, parts, cfg)
