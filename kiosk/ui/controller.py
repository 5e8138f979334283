"""The kiosk's moving parts off the GUI thread, as Qt signals.

* the **capture thread** (:class:`kiosk.camera.CaptureThread`) keeps the newest camera frame;
* the **recognition worker** (:class:`RecognitionWorker`, a QObject in its own QThread) loops
  ``capture.wait_next -> session.process`` and emits each new :class:`SessionState`; repeats of
  the same picture (a frozen camera) are skipped: they prove nothing about the tray being still,
  so they never settle the tray or start a recognition;
* the shopper view refreshes its preview from ``capture.latest()`` on a timer, so the preview
  never waits for recognition;
* cashier/staff intents (override, remove, quantity, finish) go straight to the session, which
  answers with the new state at once.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

log = logging.getLogger(__name__)


class RecognitionWorker(QObject):
    """Runs in its own QThread: frames in, :class:`SessionState` out."""

    stateChanged = Signal(object)
    failed = Signal(str)

    def __init__(self, controller: KioskController) -> None:
        super().__init__()
        self._controller = controller
        self._stop = threading.Event()
        self._paused = threading.Event()
        self.frames_processed = 0
        self.frames_repeated = 0  # frozen-camera repeats skipped

    @Slot()
    def run(self) -> None:
        last_capture, last_index = None, -1
        last_error = ""
        while not self._stop.is_set():
            capture = self._controller.capture
            if capture is None or self._paused.is_set():
                if capture is None:
                    state = self._controller.session.set_camera_status("stopped")
                    if state is not None:
                        self.stateChanged.emit(state)
                time.sleep(0.05)
                continue
            if capture is not last_capture:
                last_capture, last_index = capture, -1
            session = self._controller.session
            for state in (session.set_camera_status(capture.status),
                          session.tick(frozen_for=capture.frozen_for)):
                if state is not None:
                    self.stateChanged.emit(state)
            try:
                frame = capture.wait_next(last_index, 0.2)
            except Exception as exc:  # noqa: BLE001 - a camera hiccup is not fatal
                log.debug("wait_next: %s", exc)
                time.sleep(0.05)
                continue
            if frame is None:
                continue
            last_index = frame.index
            if frame.repeat:
                self.frames_repeated += 1
                continue
            try:
                state = self._controller.session.process(frame)
            except Exception as exc:
                log.exception("recognition failed on frame %s", frame.index)
                if str(exc) != last_error:
                    last_error = str(exc)
                    self.failed.emit(last_error)
                continue
            self.frames_processed += 1
            if state is not None:
                self.stateChanged.emit(state)

    def stop(self) -> None:
        self._stop.set()

    def pause(self, paused: bool) -> None:
        (self._paused.set if paused else self._paused.clear)()


class _StatusRelay(QObject):
    status = Signal(str, str)
    call = Signal(object)  # kiosk.checkout.calls.CallEvent, from whichever thread opened the call
    catalog = Signal(object)  # kiosk.catalog.CatalogEvent, from whichever thread committed it


class KioskController(QObject):
    """Owns the engine, the checkout session, the capture thread and the recognition worker.

    ``camera_opener(spec) -> Camera`` opens a camera for :meth:`set_camera_source`.
    """

    stateChanged = Signal(object)  # SessionState, on the GUI thread
    cameraStatusChanged = Signal(str, str)  # status, message
    recognitionFailed = Signal(str)
    catalogueChanged = Signal()
    catalogEvent = Signal(object)  # kiosk.catalog.CatalogEvent, on the GUI thread
    callEvent = Signal(object)  # kiosk.checkout.calls.CallEvent, on the GUI thread

    def __init__(self, engine, session, camera, *, db_path=None, settings=None,
                 camera_opener: Callable[[str], Any] | None = None,
                 camera_source: str = "demo", settings_path=None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.session = session
        self.settings = settings
        self.db_path = db_path if db_path is not None else engine.catalog.path
        self.camera_opener = camera_opener
        self.camera_source = camera_source
        self.settings_path = settings_path  # where a changed camera source is saved
        self.camera = None
        self.capture = None
        self.camera_status = "stopped"
        self.camera_message = ""
        self.state = getattr(session, "state", None)
        self._intent_index = -1
        self._next_index = 0  # the first frame index of the next capture thread
        self._relay = _StatusRelay()
        self._relay.status.connect(self._on_status)
        self._relay.call.connect(self.callEvent)
        board = getattr(session, "calls", None)
        self._unsubscribe = board.subscribe(self._relay.call.emit) if board is not None \
            else (lambda: None)
        # the catalogue's committed changes, whoever made them (a staff tab, the learner, the
        # command line through this process's catalogue), reach the widgets on the GUI thread
        self._relay.catalog.connect(self._on_catalog_event)
        subscribe = getattr(getattr(engine, "catalog", None), "subscribe", None)
        self._stop_catalog = subscribe(self._relay.catalog.emit) if subscribe is not None \
            else (lambda: None)
        self._worker = RecognitionWorker(self)
        self._worker.stateChanged.connect(self._on_worker_state)
        self._worker.failed.connect(self.recognitionFailed)
        self._thread = QThread()
        self._thread.setObjectName("recognition")
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        if camera is not None:
            self._start_capture(camera)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if not self._thread.isRunning():
            self._thread.start()

    def shutdown(self) -> None:
        self._unsubscribe()
        self._stop_catalog()
        self._worker.stop()
        if self._thread.isRunning():
            self._thread.quit()
            self._thread.wait(5000)
        self._stop_capture()
        flush = getattr(getattr(self.session, "on_answer", None), "flush", None)
        if flush is not None:  # answers still being learned land before the catalogue closes
            flush()

    @property
    def worker(self) -> RecognitionWorker:
        return self._worker

    # -------------------------------------------------------------------- camera
    def _start_capture(self, camera) -> None:
        from kiosk.camera import CaptureThread

        self.camera = camera
        self.camera_status = "starting"
        # frame indices go on from the last camera's: states of the new camera must not look
        # older than the cashier's last change (see _on_worker_state)
        first = max(self._next_index, self._intent_index + 1)
        capture = CaptureThread(camera, on_status=self._relay.status.emit, first_index=first)
        capture.start()
        self.capture = capture

    def _stop_capture(self) -> None:
        capture, self.capture = self.capture, None
        if capture is not None:
            capture.stop()
            last = capture.latest()
            if last is not None:
                self._next_index = max(self._next_index, last.index + 1)

    def set_camera(self, camera, source: str | None = None) -> None:
        """Swap the camera (capture thread restarted); the basket is kept."""
        self._stop_capture()
        if source is not None:
            self.camera_source = source
        # another picture altogether: nothing of the old one may stay payable
        self._publish(self.session.camera_switched(), intent=True)
        self._start_capture(camera)

    def set_camera_source(self, source: str) -> None:
        """Open ``source`` ("demo", a device index, a file or folder) and switch to it.
        Raises when it cannot be opened; the old camera keeps running then."""
        if self.camera_opener is None:
            raise RuntimeError("no camera opener configured")
        camera = self.camera_opener(source)
        self.set_camera(camera, source)

    def remember_camera_source(self, source: str) -> None:
        """Save ``source`` as the camera of the next start (when settings came from a file)."""
        if self.settings is None or self.settings_path is None:
            return
        from kiosk.settings import save_settings, with_changes

        value = int(source) if str(source).isdigit() else str(source)
        self.settings = with_changes(self.settings, "camera", source=value)
        save_settings(self.settings, self.settings_path)

    def latest_frame(self):
        capture = self.capture
        return capture.latest() if capture is not None else None

    @Slot(str, str)
    def _on_status(self, status: str, message: str) -> None:
        self.camera_status, self.camera_message = status, message
        self.cameraStatusChanged.emit(status, message)

    # --------------------------------------------------------------------- state
    @Slot(object)
    def _on_worker_state(self, state) -> None:
        self._publish(state)

    def _publish(self, state, intent: bool = False) -> None:
        if state is None:
            return
        current = self.state
        if current is not None and getattr(state, "seq", 1) <= getattr(current, "seq", 0):
            return  # made before the one shown (e.g. before the cashier's last change)
        if intent:
            self._intent_index = max(self._intent_index, state.frame_index)
        self.state = state
        self.stateChanged.emit(state)

    def item(self, track_id: int):
        for it in (self.state.items if self.state else ()):
            if it.track_id == track_id:
                return it
        return None

    # ------------------------------------------------------------------- intents
    @property
    def attendant(self):
        return self.session.attendant

    def open_attendant(self, cashier, how: str = "code"):
        self._publish(self.session.open_attendant(cashier, how), intent=True)
        return self.state

    def end_attendant(self):
        self._publish(self.session.end_attendant(), intent=True)
        return self.state

    def set_staff_present(self, present: bool):
        self._publish(self.session.set_staff_present(present), intent=True)
        return self.state

    def call_cashier(self, detail: str | None = None):
        self._publish(self.session.call_cashier(detail), intent=True)
        return self.state

    def shopper_choices(self, track_id: int):
        return self.session.shopper_choices(track_id)

    def shopper_choose(self, track_id: int, sku: str):
        self._publish(self.session.shopper_choose(track_id, sku), intent=True)
        return self.state

    def tick(self):
        """Time passed (attendant session, picture age): publish what changed."""
        capture = self.capture
        self._publish(self.session.tick(frozen_for=capture.frozen_for if capture else 0.0))
        return self.state

    def override(self, track_id: int, sku: str):
        self._publish(self.session.override(track_id, sku), intent=True)
        return self.state

    def remove(self, track_id: int):
        self._publish(self.session.remove(track_id), intent=True)
        return self.state

    def set_qty(self, track_id: int, qty: int):
        self._publish(self.session.set_qty(track_id, qty), intent=True)
        return self.state

    def search(self, text: str):
        return self.session.search(text)

    def finish(self) -> int:
        """Record the sale; ValueError (with a message for the cashier) when it cannot be."""
        tx = self.session.finish()
        state = self.session.state
        if state is not None:
            self._publish(state, intent=True)
        return tx

    def reset(self) -> None:
        self.session.reset()
        if self.session.state is not None:
            self._publish(self.session.state, intent=True)

    # --------------------------------------------------------------------- staff
    def _on_catalog_event(self, event) -> None:
        """A committed catalogue change (on the GUI thread): the basket shows new names and
        prices at once, and the staff tabs refresh (``catalogueChanged``, ``catalogEvent``)."""
        from kiosk.catalog import events as ev

        if event.kind in (ev.PRODUCT_ADDED, ev.PRODUCT_EDITED, ev.PRODUCT_DELETED, ev.PRICE,
                          ev.ACTIVATION):
            self._refresh_basket()
        if event.kind != ev.VIEWS_LEARNED:
            self.catalogueChanged.emit()
        self.catalogEvent.emit(event)

    def _refresh_basket(self) -> None:
        try:
            self._publish(self.session.refresh(), intent=True)
        except Exception:  # noqa: BLE001 - the next recognition shows them anyway
            log.exception("refreshing the basket after a catalogue change")

    def notify_catalogue_changed(self) -> None:
        """The catalogue changed behind this process's back (e.g. a store pull wrote it
        directly): the basket shows new prices and names at once.  Changes made through the
        catalogue's own methods arrive as events and need no call."""
        self._refresh_basket()
        self.catalogueChanged.emit()
