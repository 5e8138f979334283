"""An :class:`~kiosk.embed.Embedder` whose model runs in a child process.

Paddle Inference keeps Python's GIL for the whole of a predictor run, so in one process every
crop the kiosk embeds freezes the Qt GUI thread for as long as the run takes (15–50 ms per crop
on 2 cores).  :class:`RemoteEmbedder` runs the same model in a separate process (a fresh
interpreter, so no Qt or thread state is inherited) and only waits on a pipe, which releases the GIL: the
window keeps painting while items are embedded.

The child is the kiosk itself started again (``python -m kiosk.embed.remote``, or the bundle's
executable with the hidden ``_embed-server`` argument), talking over two pipes.  It is started once, reports the model's id, size and threshold, then embeds batches of
crops sent over the pipe.  If it dies (killed, out of memory), the next call starts a new one
and retries once, so a kiosk recovers by itself; a second failure is raised to the caller.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import traceback
from typing import Any, Sequence

import numpy as np

from kiosk.embed import Embeddings

log = logging.getLogger(__name__)

START_TIMEOUT_S = 180.0


SERVER_ARG = "_embed-server"


def server_command(read_fd: int, write_fd: int, spec: str | None) -> list[str]:
    """The command line of the child: the bundle's own executable, or this Python."""
    args = [SERVER_ARG, str(read_fd), str(write_fd), spec or "default"]
    if getattr(sys, "frozen", False):  # PyInstaller bundle: kiosk.cli.main dispatches it
        return [sys.executable, *args]
    return [sys.executable, "-m", "kiosk.embed.remote", *args]


def serve(args: Sequence[str]) -> int:  # pragma: no cover - runs in the child process
    """Child process: load the model, then embed whatever arrives until told to quit."""
    from multiprocessing.connection import Connection

    os.environ.setdefault("GLOG_minloglevel", "2")
    read_fd, write_fd, spec = int(args[0]), int(args[1]), args[2]
    conn_in = Connection(read_fd, writable=False)
    conn_out = Connection(write_fd, readable=False)
    try:
        from kiosk.embed import load_embedder

        embedder = load_embedder(None if spec == "default" else spec)
        conn_out.send(("ready", {"model_id": embedder.model_id, "dim": int(embedder.dim),
                                 "threshold": getattr(embedder, "threshold", None),
                                 "name": repr(embedder)}))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        conn_out.send(("error", f"{type(exc).__name__}: {exc}"))
        return 1
    # the kiosk's trays hold 1-16 items: build oneDNN's kernels for those batch sizes now
    # (~1.6 s, while the window starts) rather than on the first tray of each size
    warm_up = getattr(embedder, "warm_up", None)
    if callable(warm_up):
        try:
            warm_up()
        except Exception:  # noqa: BLE001 - only a speed-up
            pass
    from kiosk.runtime.pauses import after_start

    after_start()  # the model is loaded and warm: no collector walks over it while embedding
    reader = None
    while True:
        try:
            kind, payload = conn_in.recv()
        except (EOFError, OSError):
            return 0  # the parent went away
        if kind == "quit":
            return 0
        try:
            if kind == "read":  # pack text (kiosk.text), the reader loaded on first use
                folder, images = payload
                if reader is None:
                    from kiosk.text import TextReader

                    reader = TextReader(folder)
                conn_out.send(("ok", [reader.read(img).lines for img in images]))
                continue
            vectors = embedder.embed(payload).vectors
            conn_out.send(("ok", vectors))
        except BaseException as exc:  # noqa: BLE001 - a bad crop must not kill the server
            conn_out.send(("error", f"{type(exc).__name__}: {exc}\n"
                                    f"{traceback.format_exc(limit=3)}"))


class EmbedderProcessError(RuntimeError):
    """The embedding process failed to start or died twice in a row."""


class RemoteEmbedder:
    """:class:`kiosk.embed.Embedder` backed by :func:`kiosk.embed.load_embedder` ``(spec)`` in a
    child process.  Thread-safe (one batch at a time); :meth:`close` stops the child."""

    def __init__(self, spec: str | None = None, start_timeout: float = START_TIMEOUT_S) -> None:
        self.spec = spec
        self.start_timeout = start_timeout
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._send = self._recv = None
        self.restarts = 0
        info = self._start()
        self.model_id: str = info["model_id"]
        self.dim: int = info["dim"]
        self.threshold: float | None = info["threshold"]
        self._name = info["name"]

    def __repr__(self) -> str:
        pid = self._proc.pid if self._proc is not None else None
        return f"RemoteEmbedder({self._name}, pid={pid})"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # ------------------------------------------------------------------ process
    def _start(self) -> dict[str, Any]:
        from multiprocessing.connection import Connection

        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            proc = subprocess.Popen(server_command(to_child_r, from_child_w, self.spec),
                                    pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL,
                                    close_fds=True)
        except BaseException:
            os.close(to_child_w)
            os.close(from_child_r)
            raise
        finally:  # the child's ends
            os.close(to_child_r)
            os.close(from_child_w)
        send = Connection(to_child_w, readable=False)
        recv = Connection(from_child_r, writable=False)
        try:
            if not recv.poll(self.start_timeout):
                raise EmbedderProcessError(f"the embedding process did not start within "
                                           f"{self.start_timeout:.0f} s")
            try:
                kind, payload = recv.recv()
            except (EOFError, OSError) as exc:
                raise EmbedderProcessError(f"the embedding process died while starting "
                                           f"(exit code {proc.wait(5)})") from exc
            if kind != "ready":
                raise EmbedderProcessError(f"the embedding process could not load the model: "
                                           f"{payload}")
        except BaseException:  # no child and no pipe left behind
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            send.close()
            recv.close()
            raise
        self._proc, self._send, self._recv = proc, send, recv
        log.info("embedding process %d ready: %s", proc.pid, payload["name"])
        return payload

    def _stop(self) -> None:
        proc, send, recv = self._proc, self._send, self._recv
        self._proc = self._send = self._recv = None
        if send is not None:
            try:
                send.send(("quit", None))
            except (OSError, ValueError):
                pass
            send.close()
        if proc is not None:
            try:
                proc.wait(2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(2)
        if recv is not None:
            recv.close()

    def _call(self, crops: list[np.ndarray], kind: str = "embed") -> Any:
        if self._send is None:
            info = self._start()
            if info["model_id"] != self.model_id:
                raise EmbedderProcessError(f"the restarted embedding process loaded "
                                           f"{info['model_id']}, not {self.model_id}")
        self._send.send((kind, crops))
        status, payload = self._recv.recv()
        if status != "ok":
            raise RuntimeError(f"{'reading text' if kind == 'read' else 'embedding'} failed: "
                               f"{payload}")
        return payload

    def _call_restarting(self, crops: list[np.ndarray], kind: str) -> Any:
        with self._lock:
            try:
                return self._call(crops, kind)
            except (EOFError, OSError, BrokenPipeError) as exc:
                # the child died (killed, out of memory): start a new one and try once more
                code = self._proc.poll() if self._proc is not None else None
                log.warning("embedding process died (%s, exit code %s): restarting it", exc,
                            code)
                self._stop()
                self.restarts += 1
                try:
                    return self._call(crops, kind)
                except (EOFError, OSError) as again:
                    self._stop()
                    raise EmbedderProcessError(f"the embedding process died again: {again}") \
                        from again

    def text_reader(self, model_dir) -> "RemoteTextReader":
        """A pack-text reader (:class:`kiosk.text.TextReader` of the PP-OCRv4 models in
        ``model_dir``) running in the same child."""
        return RemoteTextReader(self, model_dir)

    # ------------------------------------------------------------------ Embedder
    def embed(self, crops: Sequence[np.ndarray]) -> Embeddings:
        crops = [np.ascontiguousarray(c) for c in crops]
        if not crops:
            return Embeddings(np.zeros((0, self.dim), np.float32), self.model_id)
        vectors = self._call_restarting(crops, "embed")
        return Embeddings(np.asarray(vectors, np.float32), self.model_id)

    def close(self) -> None:
        with self._lock:
            self._stop()

    def __enter__(self) -> "RemoteEmbedder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RemoteTextReader:
    """:class:`kiosk.text.TextReader`'s interface, read in a :class:`RemoteEmbedder`'s child
    (OCR keeps the GIL like embedding does, so it stays out of the GUI's process too)."""

    def __init__(self, remote: RemoteEmbedder, model_dir) -> None:
        from kiosk.text import READER_ID

        self.remote = remote
        self.model_dir = str(model_dir)
        self.reader_id = READER_ID

    def read(self, rgb: np.ndarray):
        return self.read_many([rgb])[0]

    def read_many(self, images: Sequence[np.ndarray]) -> list:
        from kiosk.text import PackText

        if not images:
            return []
        lines = self.remote._call_restarting(
            (self.model_dir, [np.ascontiguousarray(i) for i in images]), "read")
        return [PackText.from_lines(ls) for ls in lines]


if __name__ == "__main__":  # pragma: no cover - the child process
    sys.exit(serve(sys.argv[2:] if sys.argv[1:2] == [SERVER_ARG] else sys.argv[1:]))

