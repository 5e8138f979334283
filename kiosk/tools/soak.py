"""``kiosk bench --soak MINUTES``: the checkout pipeline for minutes or hours, watching for leaks.

The demo camera plays random baskets sped up: it makes the next frame as soon as the pipeline
took the last one (``realtime`` off; the scene waits while recognition runs), so a minute of
soak is many minutes of shop.  Frames go through the real :class:`~kiosk.camera.CaptureThread`
and the real :class:`~kiosk.checkout.session.CheckoutSession` (its pictures through the kiosk's one
recognition path, :mod:`kiosk.pipeline`) on a temporary copy of the demo catalogue:
settling, recognition, basket updates; and, when the demo hand reaches over the tray at the end
of each basket, the cashier's part (unknown items get their best candidate or are removed, which
logs corrections) and ``finish()``, which stores the sale.  The session's clock is the scene's
(frame number / fps), so the tray settles after the same 300 ms of scene time as in a shop.

Every few seconds the process's resident memory, thread count and open file descriptors are
sampled from /proc/self (``status``, ``task/``, ``fd/``).  After a warm-up (the first 20 %), each
is reported as start / end / max and growth; the soak passes when none grows by more than 5 %
(start and end are medians of the first and last three samples after warm-up, so one sample
taken during a recognition does not decide it).
"""
from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from types import SimpleNamespace
from collections.abc import Callable
from pathlib import Path

LIMIT_PCT = 5.0
WARMUP_FRACTION = 0.2


# ----------------------------------------------------------------------------- /proc/self
def proc_sample() -> dict:
    """Resident memory (MiB), threads and open file descriptors of this process (Linux)."""
    rss_kb = 0
    with open("/proc/self/status", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
                break
    return {"rss_mb": round(rss_kb / 1024, 1), "threads": len(os.listdir("/proc/self/task")),
            "fds": len(os.listdir("/proc/self/fd"))}


def summarize(samples: list[dict], warmup_s: float, limit_pct: float = LIMIT_PCT) -> dict:
    """Start / end / max and growth of each metric over the samples taken after ``warmup_s``."""
    after = [s for s in samples if s["t"] >= warmup_s] or samples[-1:]
    out: dict = {}
    for key in ("rss_mb", "threads", "fds"):
        values = [s[key] for s in after]
        start = statistics.median(values[:3])
        end = statistics.median(values[-3:])
        growth = (end - start) / start * 100.0 if start else 0.0
        out[key] = {"start": start, "end": end, "max": max(values),
                    "growth_pct": round(growth, 2), "pass": growth <= limit_pct}
    return out


# ------------------------------------------------------------------------------- the camera
class LockstepCamera:
    """The demo camera (``realtime`` off), one frame ahead of the pipeline: :meth:`read` makes
    the next frame once :meth:`taken` says the last one was taken (or after ``patience`` s, so
    that a long recognition never looks like a dead camera)."""

    def __init__(self, inner, patience: float = 1.0) -> None:
        self.inner = inner
        self.name = f"{inner.name} (soak)"
        self.patience = float(patience)
        self._taken = threading.Event()
        self._taken.set()

    def open(self) -> None:
        self.inner.open()

    def read(self):
        self._taken.wait(self.patience)
        self._taken.clear()
        return self.inner.read()

    def taken(self) -> None:
        self._taken.set()

    def close(self) -> None:
        self.inner.close()


# ------------------------------------------------------------------------------- the soak
#: the cashier who answers the soak's baskets
SOAK_CASHIER = SimpleNamespace(id="SOAK", name="soak cashier")


def resolve_basket(actor, confirm: bool = False) -> int:
    """The cashier at the end of a basket: unknown (or unpriced) items get their best candidate
    or are removed (``confirm``: the first item's product is also re-picked, a logged
    correction).  ``actor``: the session, or the window's controller.  Corrections made."""
    corrections = 0
    if actor.attendant is None:  # the cashier shows their badge / types their code
        actor.open_attendant(SOAK_CASHIER)
    items = actor.state.items
    if confirm and items and not items[0].unknown:
        try:
            actor.override(items[0].track_id, items[0].sku)
            corrections += 1
        except (KeyError, ValueError):
            pass
    for item in actor.state.items:
        try:
            if item.unknown and item.candidates:
                actor.override(item.track_id, item.candidates[0].sku)
                corrections += 1
            elif item.unknown or item.price is None:
                actor.remove(item.track_id)
                corrections += 1
        except (KeyError, ValueError):  # the item left the tray meanwhile
            pass
    return corrections


def _checkout(session, confirm: bool = False) -> tuple[bool, int]:
    """:func:`resolve_basket`, then the shopper finishes the sale.  (sold?, corrections)."""
    corrections = resolve_basket(session, confirm)
    if not session.state.items:
        return False, corrections
    try:
        session.finish()
    except ValueError:
        return False, corrections
    return True, corrections


def model_and_catalogue(embedder, db, tmp: Path, progress):
    """The model (loaded here unless given) and a catalogue (the demo one, built in ``tmp``,
    unless given)."""
    if embedder is None:
        from kiosk.embed import load_embedder

        progress("loading the model ...")
        embedder = load_embedder()
    if db is None:
        from kiosk.demo.catalog import build_demo_catalog

        progress("demo catalogue ...")
        db = build_demo_catalog(tmp / "soak.db", embedder=embedder)
    return embedder, db


def _parts(db, embedder, demo):
    """The engine and the session on ``db`` fed by ``demo`` (:func:`kiosk.assemble.demo_parts`:
    the tray detector calibrated with the demo's empty tray; the lent model stays open)."""
    from kiosk.assemble import demo_parts
    from kiosk.checkout.session import CheckoutSession

    return demo_parts(db, embedder=embedder, camera=demo, session=CheckoutSession)


def run_soak(minutes: float, *, embedder=None, db: str | Path | None = None, seed: int = 0,
             sample_s: float | None = None, limit_pct: float = LIMIT_PCT,
             progress: Callable[[str], None] = lambda m: None) -> dict:
    """Soak the pipeline for ``minutes`` (see the module docstring); the report as a dict.

    ``embedder`` / ``db``: reuse a loaded embedder and a demo catalogue (it gets the sales);
    by default the embedder is loaded and a demo catalogue is built in a temporary folder."""
    from kiosk.camera import CaptureThread, Frame
    from kiosk.camera.demo import DemoCamera

    if not float(minutes) > 0:
        raise ValueError(f"a soak needs a positive number of minutes, got {minutes!r}")
    duration = max(1.0, float(minutes) * 60.0)
    sample_s = float(sample_s) if sample_s else min(5.0, max(0.25, duration / 100.0))
    warmup_s = WARMUP_FRACTION * duration
    with tempfile.TemporaryDirectory(prefix="kiosk-soak-") as tmp:
        embedder, db = model_and_catalogue(embedder, db, Path(tmp), progress)
        demo = DemoCamera(fps=30, seed=seed, realtime=False)
        camera = LockstepCamera(demo)
        parts = _parts(db, embedder, demo)
        engine, session = parts.engine, parts.session
        statuses: list[str] = []
        capture = CaptureThread(camera, on_status=lambda s, m: statuses.append(s))
        counts = {"frames_processed": 0, "repeats_skipped": 0, "states": 0, "transactions": 0,
                  "corrections": 0, "finish_refused": 0}
        samples: list[dict] = []
        t0 = time.monotonic()

        def sample() -> None:
            samples.append({"t": round(time.monotonic() - t0, 2), **proc_sample(),
                            "frames": counts["frames_processed"],
                            "recognitions": session.recognitions,
                            "transactions": counts["transactions"]})

        progress(f"soaking for {duration / 60:g} min (a sample every {sample_s:g} s) ...")
        capture.start()
        sample()
        next_sample = t0 + sample_s
        last_index, last_phase = -1, ""
        try:
            while True:
                now = time.monotonic()
                if now >= next_sample:
                    sample()
                    next_sample += sample_s
                    if len(samples) % 12 == 0:
                        s = samples[-1]
                        progress(f"{s['t']:7.0f} s  rss {s['rss_mb']} MiB  threads "
                                 f"{s['threads']}  fds {s['fds']}  frames {s['frames']}  "
                                 f"recognitions {s['recognitions']}  sales "
                                 f"{s['transactions']}")
                if now - t0 >= duration:
                    break
                frame = capture.wait_next(last_index, 0.2)
                if frame is None:
                    continue
                last_index = frame.index
                camera.taken()
                phase = demo.phase
                if frame.repeat:
                    counts["repeats_skipped"] += 1
                    continue
                scene = Frame(frame.image, frame.index, frame.index / demo.fps)
                if session.process(scene) is not None:
                    counts["states"] += 1
                counts["frames_processed"] += 1
                if phase == "hand" and last_phase != "hand":  # the basket is complete
                    sold, corrected = _checkout(session, confirm=demo.basket_count % 4 == 0)
                    counts["transactions" if sold else "finish_refused"] += 1
                    counts["corrections"] += corrected
                last_phase = phase
            sample()
        finally:
            capture.stop()
            tables = engine.catalog.table_counts()
            pipeline_frames = engine.frames_recognised
            parts.close()
    elapsed = samples[-1]["t"]
    metrics = summarize(samples, warmup_s, limit_pct)
    ok = all(m["pass"] for m in metrics.values())
    report = {
        "mode": "headless",
        "duration_s": round(elapsed, 1),
        "warmup_s": round(warmup_s, 1),
        "sample_every_s": sample_s,
        "samples": len(samples),
        **counts,
        "frames_captured": capture.frames_captured,
        "frames_dropped": capture.frames_dropped,
        "recognitions": session.recognitions,
        "baskets": demo.basket_count,
        "scene_minutes": round(demo.frame_count / demo.fps / 60.0, 1),
        "frames_per_s": round(counts["frames_processed"] / max(elapsed, 1e-9), 1),
        "camera_statuses": statuses,
        **metrics,
        "limit_pct": limit_pct,
        "pass": ok,
        "verdict": "PASS" if ok else "FAIL",
        "trace": [[s["t"], s["rss_mb"], s["threads"], s["fds"]] for s in samples],
    }
    report["pipeline_frames"] = pipeline_frames  # pictures through kiosk.pipeline
    report["transactions_stored"] = tables.get("transactions")
    report["corrections_stored"] = tables.get("corrections")
    return report


def format_report(r: dict) -> str:
    """The report for people (``kiosk bench --soak`` without ``--json``)."""
    lines = [f"soak ({r['mode']}): {r['duration_s']:g} s, warm-up {r['warmup_s']:g} s, "
             f"{r['samples']} samples",
             f"  frames processed {r['frames_processed']} ({r['frames_per_s']:g}/s), "
             f"recognitions {r['recognitions']}, sales {r['transactions']} "
             f"(stored {r.get('transactions_stored')}), corrections {r['corrections']}, "
             f"baskets {r['baskets']} ({r['scene_minutes']:g} scene minutes)"]
    for key, label in (("rss_mb", "RSS MiB"), ("threads", "threads"), ("fds", "open fds")):
        m = r[key]
        lines.append(f"  {label:8s} start {m['start']:g}  end {m['end']:g}  max {m['max']:g}  "
                     f"growth {m['growth_pct']:+.2f} %  {'ok' if m['pass'] else 'GROWS'}")
    lines.append(f"{r['verdict']} (no growth over {r['limit_pct']:g} % after warm-up)")
    return "\n".join(lines)
