"""Paddle Inference helpers shared by the Paddle backends.

* :func:`import_paddle` imports ``paddle`` quietly (glog level 2, no 'No ccache found' warning).
* :func:`find_model_files` locates the program/params pair in an exported model folder
  (``inference.json`` / ``inference.pdmodel`` / ``model.json`` / ``model.pdmodel`` with the
  matching ``.pdiparams``).
* :func:`create_predictor` builds a CPU :class:`paddle.inference.Predictor` with oneDNN and one
  math thread per usable core.
* :class:`PaddleModel` wraps a predictor: feed a dict of numpy arrays, get the outputs back.  If
  the first run with oneDNN fails (Paddle 3.3.1's oneDNN kernels reject some ``nearest_interp``
  ops) it rebuilds the predictor without oneDNN, logs a warning and carries on.
* :func:`load_yaml` reads the small YAML files that PaddleClas / PaddleDetection export.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

log = logging.getLogger(__name__)

_MODEL_PREFIXES = ("inference", "model")
_PROGRAM_SUFFIXES = (".json", ".pdmodel")


def import_paddle():
    """Import and return ``paddle`` with its start-up chatter silenced."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("FLAGS_minloglevel", "2")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*No ccache found.*")
        import paddle  # noqa: WPS433
        import paddle.inference  # noqa: F401
    # Importing paddle adds its own stderr handler to the root logger (and lowers its level to
    # INFO), which would print every INFO line of every library twice: undo that, the kiosk's
    # logging is set up by kiosk.logs.
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    return paddle


def num_cpu_threads() -> int:
    """Math threads per predictor: ``KIOSK_THREADS`` if set, else every usable core."""
    env = os.environ.get("KIOSK_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def find_model_files(model_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Return ``(program_file, params_file)`` of an exported Paddle model folder."""
    d = Path(model_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"Paddle model folder {str(d)!r} does not exist")
    for prefix in _MODEL_PREFIXES:
        for suffix in _PROGRAM_SUFFIXES:
            prog = d / f"{prefix}{suffix}"
            if prog.is_file():
                params = d / f"{prefix}.pdiparams"
                if not params.is_file():
                    raise FileNotFoundError(
                        f"Paddle model folder {str(d)!r} has {prog.name} but no {params.name}"
                    )
                return prog, params
    present = sorted(p.name for p in d.iterdir())
    raise FileNotFoundError(
        f"Paddle model folder {str(d)!r} holds no exported program: expected inference.json or "
        f"inference.pdmodel (or model.json / model.pdmodel) plus the .pdiparams file; "
        f"found {present or 'nothing'}"
    )


def params_digest(model_dir: str | os.PathLike, length: int = 12) -> str:
    """First ``length`` hex digits of the sha256 of the model's params file."""
    _, params = find_model_files(model_dir)
    h = hashlib.sha256()
    with open(params, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX), where oneDNN's bf16
    kernels run about twice as fast as fp32 at the same results (cosine > 0.99 to fp32)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: str | None) -> str:
    """``"auto"`` (or unset): ``KIOSK_PRECISION`` if set, else bf16 where the CPU has it."""
    precision = (precision or "auto").lower()
    if precision == "auto":
        precision = os.environ.get("KIOSK_PRECISION", "auto").lower()
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "auto":
        precision = "bf16" if cpu_has_bf16() else "fp32"
    return precision


def create_predictor(
    model_dir: str | os.PathLike, use_onednn: bool = True, num_threads: int | None = None,
    precision: str = "fp32",
):
    """Build a CPU Paddle Inference predictor for the model in ``model_dir``
    (``precision`` "bf16" needs oneDNN and a CPU with bf16; see :func:`resolve_precision`)."""
    paddle = import_paddle()
    prog, params = find_model_files(model_dir)
    config = paddle.inference.Config(str(prog), str(params))
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(num_threads or num_cpu_threads())
    if use_onednn:
        config.enable_mkldnn()
        if precision == "bf16":
            config.enable_mkldnn_bfloat16()
    else:
        config.disable_mkldnn()
    config.switch_ir_optim(True)
    config.disable_glog_info()
    return paddle.inference.create_predictor(config)


class PaddleModel:
    """A predictor with name-based numpy I/O and a oneDNN fallback on the first failing run."""

    def __init__(
        self, model_dir: str | os.PathLike, use_onednn: bool = True, num_threads: int | None = None,
        precision: str = "fp32",
    ) -> None:
        self.model_dir = Path(model_dir)
        self.num_threads = num_threads
        self.use_onednn = use_onednn
        self.precision = resolve_precision(precision) if use_onednn else "fp32"
        self._predictor = create_predictor(self.model_dir, use_onednn, num_threads,
                                           self.precision)
        self._ran_ok = False
        self._lock = threading.Lock()

    @property
    def input_names(self) -> list[str]:
        return list(self._predictor.get_input_names())

    @property
    def output_names(self) -> list[str]:
        return list(self._predictor.get_output_names())

    def input_shape(self, name: str) -> list[int]:
        return list(self._predictor.get_input_handle(name).shape())

    def _run_once(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        p = self._predictor
        for name in p.get_input_names():
            if name not in feed:
                raise KeyError(f"model {self.model_dir} needs input {name!r}")
            h = p.get_input_handle(name)
            arr = np.ascontiguousarray(feed[name])
            h.reshape(list(arr.shape))
            h.copy_from_cpu(arr)
        p.run()
        return [p.get_output_handle(n).copy_to_cpu() for n in p.get_output_names()]

    def run(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model; returns the outputs in ``output_names`` order."""
        with self._lock:
            try:
                out = self._run_once(feed)
            except KeyError:
                raise
            except Exception as exc:  # noqa: BLE001 - Paddle raises assorted error types
                if not self.use_onednn or self._ran_ok:
                    raise
                lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
                if self.precision == "bf16":  # first try oneDNN in fp32
                    log.warning("Paddle model %s failed its first run in bf16 (%s); using fp32",
                                self.model_dir, " | ".join(lines[:3])[:300])
                    self.precision = "fp32"
                    try:
                        self._predictor = create_predictor(self.model_dir, True,
                                                           self.num_threads, "fp32")
                        out = self._run_once(feed)
                        self._ran_ok = True
                        return out
                    except Exception as again:  # noqa: BLE001
                        exc = again
                        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
                log.warning(
                    "Paddle model %s failed on its first run with oneDNN (%s: %s); "
                    "falling back to plain CPU kernels",
                    self.model_dir, type(exc).__name__, " | ".join(lines[:3])[:300],
                )
                self.use_onednn = False
                self._predictor = create_predictor(self.model_dir, False, self.num_threads)
                out = self._run_once(feed)
            self._ran_ok = True
            return out


# --------------------------------------------------------------------------- YAML


def load_yaml(path: str | os.PathLike) -> Any:
    """Read a YAML file (the preprocessing configs PaddleClas / PaddleDetection export)."""
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def as_float_list(v: Any, n: int | None = None) -> list[float]:
    """YAML number or list → list of floats (accepts strings like '1.0/255.0')."""
    if isinstance(v, str):
        return [parse_number(v)]
    if isinstance(v, Sequence):
        return [parse_number(x) for x in v]
    return [parse_number(v)] * (n or 1)


def parse_number(v: Any) -> float:
    """A float from a YAML value, accepting simple fractions such as ``'1.0/255.0'``."""
    if isinstance(v, (int, float)):
        return float(v)
    s = str(v).strip()
    if "/" in s:
        num, _, den = s.partition("/")
        return float(num) / float(den)
    return float(s)
