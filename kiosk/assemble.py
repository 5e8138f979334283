"""The composition root: the kiosk's parts built from the settings, and closed again (no Qt here).

One place decides how the parts are wired, so the window, every command, the soak, the
self-test and the screenshots run the same till:

* :func:`resolve_db` — which catalogue (``--db``, the settings, ``$KIOSK_DB``, the store's,
  else the built-in demo catalogue, built on first use);
* :func:`load_model` — the recognition model, in this process or in its own
  (:class:`kiosk.embed.remote.RemoteEmbedder`);
* :func:`text_reader_for` — the pack-text reader (PP-OCRv4) when the settings want one;
* :func:`open_engine` — the catalogue, the vector index and the stages (detector, embedder,
  decider) as ``[recognition]`` and ``[checkout]`` say;
* :func:`open_camera_for` — the camera of ``[camera]`` (the demo camera also calibrates the
  tray detector with its empty tray);
* :func:`checkout_session` — the till on an engine: phases, picture-age rule, the cashier's
  calls and authority, the learner;
* :func:`open_parts` — all of it for the kiosk (:class:`KioskParts`), and
  :meth:`KioskParts.close`, which closes the parts in the right order;
* :func:`store_client` — the store server's client (``[store] server``).

Only :mod:`kiosk.__main__` sits above the user interfaces (:mod:`kiosk.ui`, :mod:`kiosk.cli`);
both build their parts here.  ``Engine.open`` is called here and nowhere else outside the
engine's own tests.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiosk.settings import Settings

log = logging.getLogger(__name__)


def _get(settings: Any, dotted: str, default: Any = None) -> Any:
    obj = settings
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return default
    return obj


# ------------------------------------------------------------------------------ catalogue
class NoCatalogue(ValueError):
    """A catalogue that was named (``--db``, the settings, ``$KIOSK_DB``) is not there."""


def demo_db_path() -> Path:
    """Where the built-in demo catalogue lives (built on first use)."""
    from kiosk.paths import data_dir

    return data_dir() / "demo" / "catalog.db"


def existing_db(db: Path, where: str) -> Path:
    """``db`` when it is a catalogue file; else a :class:`NoCatalogue` naming it."""
    if db.is_dir():
        raise NoCatalogue(f"{db} ({where}) is a folder, not a catalogue file")
    if not db.exists():
        raise NoCatalogue(f"{db} ({where}): no such catalogue (create one with `kiosk gallery "
                          "import`, or check the path)")
    return db


def resolve_db(arg: str | Path | None = None, embedder=None, *, settings: Settings | None = None,
               must_exist: bool = False, progress=None) -> Path:
    """``arg`` (--db), else the settings' ``[paths] db``, else $KIOSK_DB, else the store
    catalogue if it exists, else the demo catalogue (built on first use, with ``embedder``
    when given; ``progress(stage, done, total)`` is told how that goes).  ``must_exist``: a
    named catalogue that does not exist is a :class:`NoCatalogue` (for commands that never
    create one)."""
    from kiosk.paths import default_db_path

    named = [(arg, "--db")]
    if settings is not None and settings.paths.db:
        named.append((str(settings.db_path()), "[paths] db of the settings"))
    named.append((os.environ.get("KIOSK_DB"), "$KIOSK_DB"))
    for value, where in named:
        if value:
            return existing_db(Path(value), where) if must_exist else Path(value)
    if default_db_path().exists():
        return default_db_path()
    db = demo_db_path()
    if not db.exists():
        from kiosk.demo.catalog import build_demo_catalog

        print(f"no catalogue yet: using the built-in demo catalogue at {db}", file=sys.stderr)
        build_demo_catalog(db, embedder=embedder, progress=progress)
    return db


def store_db(arg: str | Path | None = None, settings: Settings | None = None) -> Path:
    """The catalogue a command that may create one writes to: ``arg`` (--db), else the
    settings' ``[paths] db``, else $KIOSK_DB, else the store catalogue (never the demo)."""
    from kiosk.paths import default_db_path

    if arg:
        return Path(arg)
    if settings is not None and settings.paths.db:
        return settings.db_path()
    if os.environ.get("KIOSK_DB"):
        return Path(os.environ["KIOSK_DB"])
    return default_db_path()


# ------------------------------------------------------------------------------ the stages
def load_model(settings: Settings | None = None, *, model: str | Path | None = None,
               own_process: bool = False, progress=None):
    """The recognition model: ``model`` (a folder), else ``[recognition] model``, else the
    built-in one.  ``own_process``: in a child process (the window: Paddle keeps Python's lock
    while it runs, which would freeze the GUI thread).  ``progress(stage, done, total)`` hears
    :data:`kiosk.progress.MODEL` 0/1 and 1/1."""
    from kiosk.progress import MODEL

    folder = model if model is not None else _get(settings, "recognition.model")
    if progress is not None:
        progress(MODEL, 0, 1)  # (the very first start converts the model: about 10 s)
    if own_process:
        from kiosk.embed.remote import RemoteEmbedder

        embedder = RemoteEmbedder(folder)
    else:
        from kiosk.embed import load_embedder

        embedder = load_embedder(folder)
    if progress is not None:
        progress(MODEL, 1, 1)
    return embedder


def text_reader_for(settings: Settings | None = None, embedder=None, *, always: bool = False):
    """The pack-text reader as ``[recognition] read_text`` says (``always``: whatever it
    says), read in the model's process when the model has its own; None when off or the
    PP-OCRv4 models cannot be had (logged)."""
    if not always and not _get(settings, "recognition.read_text", True):
        return None
    from kiosk.text import make_text_reader

    return make_text_reader(embedder)


def background_for(settings: Settings | None = None, camera=None):
    """The empty-tray picture: ``[recognition] background``, else the demo camera's own
    empty tray, else None (the engine then looks beside the catalogue)."""
    path = _get(settings, "recognition.background")
    if path:
        from kiosk.images import load_image

        return load_image(Path(path).expanduser())
    if camera is not None and hasattr(camera, "background"):
        return camera.background()
    return None


def open_engine(db: str | Path, settings: Settings | None = None, *, embedder=None,
                **options):
    """The engine on the catalogue ``db``, with the stages the settings ask for: the
    detector, the empty-tray ``background`` (``[recognition] background``), the model
    (``embedder``, else ``[recognition] model``), the unknown ``threshold``, ``k``, the
    store's adaptation (``adapt``, ``adapt_strength``), the
    ``unsure_margin`` and ``product_floor`` of ``[checkout]``.  ``options``: keyword
    arguments of :meth:`kiosk.engine.Engine.open` that win over the settings
    (``text_reader``, ``text_backfill_limit``, ``background``, ``progress``, ...)."""
    from kiosk.engine import Engine

    if embedder is None:
        embedder = load_model(settings)
    kw = dict(detector=_get(settings, "recognition.detector") or None,
              threshold=_get(settings, "recognition.threshold"),
              k=_get(settings, "recognition.k"),
              unsure_margin=_get(settings, "checkout.unsure_margin"),
              product_floor=_get(settings, "checkout.product_floor"),
              adapt=_get(settings, "recognition.adapt"),
              adapt_strength=_get(settings, "recognition.adapt_strength"))
    if "background" not in options:
        kw["background"] = background_for(settings)
    kw.update(options)
    return Engine.open(db, embedder=embedder, **kw)


def open_camera_for(source: str, settings: Settings | None = None, engine=None):
    """A camera for ``source`` with the ``[camera]`` size and frame rate.  The demo camera
    also calibrates the tray detector with its empty tray when an ``engine`` is given."""
    from kiosk.camera import open_camera

    camera = open_camera(str(source), _get(settings, "camera.width"),
                         _get(settings, "camera.height"), _get(settings, "camera.fps"))
    if engine is not None and hasattr(camera, "background"):
        calibrate = getattr(engine.detector, "calibrate", None)
        if callable(calibrate):
            calibrate(camera.background())
    return camera


# ------------------------------------------------------------------------------ the till
def cashier_auth(catalog, settings: Settings | None = None):
    """The cashier accounts of ``catalog`` with the settings' lockout rules."""
    from kiosk.checkout.cashier_auth import CashierAuth

    return CashierAuth(catalog,
                       max_attempts=int(_get(settings, "cashier.max_code_attempts", 5)),
                       lockout_s=float(_get(settings, "cashier.lockout_s", 30)))


def staff_auth(catalog, settings: Settings | None = None):
    """The staff PIN of ``catalog`` with the settings' lockout rules."""
    from kiosk.checkout.staff_auth import StaffAuth

    return StaffAuth(catalog, max_attempts=int(_get(settings, "staff.max_pin_attempts", 5)),
                     lockout_s=float(_get(settings, "staff.lockout_s", 30)))


def checkout_session(engine, settings: Settings | None = None, **overrides):
    """A :class:`kiosk.checkout.session.CheckoutSession` on ``engine`` wired as the kiosk runs it: its
    calls for the cashier stored in the catalogue and published on a
    :class:`kiosk.checkout.calls.CallBoard` (``session.calls``), cashier badges shown to the camera
    checked against the catalogue's cashier accounts, every answer learned as the
    ``[learning]`` settings say (:class:`kiosk.checkout.learn.Learner` as ``on_answer``), and the
    ``[recognition]``, ``[checkout]`` and ``[cashier]`` settings.  ``overrides``: keyword
    arguments of the session (tests: e.g. a shorter ``settle_ms``)."""
    from kiosk.checkout.calls import CallBoard
    from kiosk.checkout.learn import learner_for
    from kiosk.checkout.session import CheckoutSession

    settings = settings if settings is not None else Settings()
    auth = cashier_auth(engine.catalog, settings)
    kw = dict(
        settle_ms=_get(settings, "recognition.settle_ms", 300),
        frozen_after_s=float(settings.checkout.frozen_after_s),
        max_sale_age_s=float(settings.checkout.max_sale_age_s),
        auto_call=bool(settings.checkout.auto_call),
        attendant_timeout_s=float(settings.cashier.session_timeout_s),
        shopper_same_price_choice=bool(settings.cashier.shopper_same_price_choice),
        calls=CallBoard(engine.catalog),
        badge_lookup=auth.verify_badge,
        on_answer=learner_for(engine, settings, background=True),
        # an unsure item gets its new views embedded and fused (never a narrower band)
        fuse_margin=max(0.03, float(engine.decider.unsure_margin)),
    )
    kw.update(overrides)
    return CheckoutSession(engine, **kw)


def store_client(parts: "KioskParts", cfg):
    """The store server's client (:class:`kiosk.sync.client.StoreClient`) for the kiosk's
    catalogue, with ``cfg`` (:func:`kiosk.sync.config.store_config` of the settings)."""
    from kiosk import __version__
    from kiosk.sync.client import StoreClient

    return StoreClient(parts.db_path, cfg.url, password=cfg.password,
                       kiosk_name=cfg.kiosk_name, embedder=parts.engine.embedder,
                       gallery_dir=parts.db_path.parent / "gallery",
                       software=f"kiosk {__version__}")


# ------------------------------------------------------------------------------ the kiosk
@dataclass
class KioskParts:
    """The kiosk's parts, opened by :func:`open_parts` (off the GUI thread: it is slow)."""

    engine: Any
    session: Any
    camera: Any
    camera_source: str
    db_path: Path
    owns_model: bool = True  # False: the model was lent (a test's, a tool's): left running

    def close(self) -> None:
        """Close the parts, the users of a part before the part: the learner's queue and the
        engine (catalogue saved, index written: :meth:`kiosk.engine.Engine.close`), then the
        model's child process (unless it was lent), then the camera.  Safe to call twice."""
        try:
            self.engine.close()
        except Exception:  # noqa: BLE001 - the model process and the camera still close
            log.exception("closing the engine")
        close = getattr(self.engine.embedder, "close", None) if self.owns_model else None
        if callable(close):  # the model's child process
            try:
                close()
            except Exception:  # noqa: BLE001
                log.exception("closing the model process")
        try:
            self.camera.close()
        except Exception:  # noqa: BLE001
            log.exception("closing the camera")


def open_parts(settings: Settings | None, db_path: str | Path | None = None, embedder=None,
               progress=None) -> KioskParts:
    """Camera, catalogue, engine and checkout session for the kiosk (slow: the window calls
    it off the GUI thread).

    ``progress(stage, done, total)`` (:mod:`kiosk.progress`, throttled) is told, on this
    thread, how the slow parts go: starting the model, building the demo catalogue,
    re-embedding, reading pack text, building the index.  With the model in its own process
    the pack text is not read here: the engine opens with it pending, and
    ``parts.engine.start_reading_text()`` reads it while the kiosk sells."""
    from kiosk.camera import find_default_camera
    from kiosk.progress import throttled

    progress = throttled(progress)
    owns_model = embedder is None
    source = str(_get(settings, "camera.source", "auto"))
    if source == "auto":
        source = find_default_camera()
    camera = open_camera_for(source, settings)
    if db_path is None and (_get(settings, "paths.db") or _get(settings, "store.server")):
        db_path = settings.db_path()  # with a store server: the store's catalogue, never the demo
    try:
        if embedder is None:
            # Paddle Inference keeps Python's GIL for a whole predictor run: in this process
            # every batch would freeze the GUI thread (~230 ms for 15 crops).  In a child
            # process the worker thread only waits on a pipe (measured: longest GUI-thread gap
            # 244 → 8 ms beside a worker embedding 16 crops three times).  Started first, so
            # that building the demo catalogue on a first start uses it too.
            embedder = load_model(settings, progress=progress,
                                  own_process=_get(settings, "recognition.model_process", True))
    except BaseException:
        camera.close()
        raise
    try:
        db = resolve_db(db_path, embedder=embedder, progress=progress)
        engine = open_engine(db, settings, embedder=embedder,
                             background=background_for(settings, camera),
                             text_reader=text_reader_for(settings, embedder),
                             progress=progress,
                             # pack text only re-ranks look-alikes: read it while selling,
                             # where the reading does not hold this process's GIL
                             defer_text=hasattr(embedder, "text_reader"))
    except BaseException:  # nothing left running: the model process, the camera
        if hasattr(embedder, "close"):
            embedder.close()
        camera.close()
        raise
    # In this process (tests, model_process = false) one crop per run bounds a GUI freeze to
    # ~50 ms at the same total cost.
    if hasattr(engine.embedder, "batch_size"):
        engine.embedder.batch_size = 1
    session = checkout_session(engine, settings if isinstance(settings, Settings) else None)
    return KioskParts(engine, session, camera, source, Path(db), owns_model)


def demo_parts(db: str | Path, settings: Settings | None = None, *, embedder=None, camera=None,
               realtime: bool = True, seed: int = 0, session=None, **engine_options
               ) -> KioskParts:
    """The kiosk's parts on the catalogue ``db`` fed by the demo camera (``camera``, else a new
    :class:`kiosk.camera.demo.DemoCamera`): the tray detector calibrated with the demo's empty
    tray.  For the soak, the GUI bench and the screenshots.  ``session``: the checkout session
    (a factory of the engine, or None: :func:`checkout_session` with ``settings``); a lent
    ``embedder`` is not closed with the parts."""
    owns_model = embedder is None
    if camera is None:
        from kiosk.camera.demo import DemoCamera

        camera = DemoCamera(fps=30, seed=seed, realtime=realtime)
    engine = open_engine(db, settings, embedder=embedder, background=camera.background(),
                         **engine_options)
    if hasattr(engine.embedder, "batch_size"):  # in-process, as open_parts runs it
        engine.embedder.batch_size = 1
    if session is None:
        session = checkout_session(engine, settings)
    elif callable(session):
        session = session(engine)
    return KioskParts(engine, session, camera, "demo", Path(db), owns_model)
