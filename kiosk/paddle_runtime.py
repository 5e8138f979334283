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
* :func:`load_yaml` reads the small YAML files that PaddleClas / PaddleDetection export
  (uses PyYAML when installed, else a built-in reader for the block/flow subset they use).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)

_MODEL_PREFIXES = ("inference", "model")
_PROGRAM_SUFFIXES = (".json", ".pdmodel")


def import_paddle():
    """Import and return ``paddle`` with its start-up chatter silenced."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("FLAGS_minloglevel", "2")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*No ccache found.*")
        import paddle  # noqa: WPS433
        import paddle.inference  # noqa: F401
    return paddle


def num_cpu_threads() -> int:
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


def create_predictor(
    model_dir: str | os.PathLike, use_onednn: bool = True, num_threads: int | None = None
):
    """Build a CPU Paddle Inference predictor for the model in ``model_dir``."""
    paddle = import_paddle()
    prog, params = find_model_files(model_dir)
    config = paddle.inference.Config(str(prog), str(params))
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(num_threads or num_cpu_threads())
    if use_onednn:
        config.enable_mkldnn()
    else:
        config.disable_mkldnn()
    config.switch_ir_optim(True)
    config.disable_glog_info()
    return paddle.inference.create_predictor(config)


class PaddleModel:
    """A predictor with name-based numpy I/O and a oneDNN fallback on the first failing run."""

    def __init__(
        self, model_dir: str | os.PathLike, use_onednn: bool = True, num_threads: int | None = None
    ) -> None:
        self.model_dir = Path(model_dir)
        self.num_threads = num_threads
        self.use_onednn = use_onednn
        self._predictor = create_predictor(self.model_dir, use_onednn, num_threads)
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
    """Read a YAML (or JSON) file: PyYAML when available, else the built-in subset reader."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        import yaml  # type: ignore[import-not-found]
    except ImportError:
        yaml = None
    if yaml is not None:
        return yaml.safe_load(text)
    stripped = text.lstrip()
    if stripped.startswith("{") or stripped.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return parse_simple_yaml(text)


_INT_RE = re.compile(r"^[-+]?\d+$")
_FLOAT_RE = re.compile(r"^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$|^[-+]?\.(inf|Inf|INF)$")


def _strip_comment(line: str) -> str:
    out, quote = [], None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            break
        out.append(ch)
    return "".join(out).rstrip()


def _scalar(tok: str) -> Any:
    t = tok.strip()
    if t == "" or t in ("~", "null", "Null", "NULL"):
        return None
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        body = t[1:-1]
        return body.replace("''", "'") if t[0] == "'" else json.loads(t)
    if t in ("true", "True", "TRUE"):
        return True
    if t in ("false", "False", "FALSE"):
        return False
    if _INT_RE.match(t):
        return int(t)
    if _FLOAT_RE.match(t):
        return float(t)
    if t.startswith("[") or t.startswith("{"):
        return _flow(t)
    return t


def _split_flow(body: str) -> list[str]:
    parts, depth, quote, cur = [], 0, None, []
    for ch in body:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur))
    return parts


def _flow(t: str) -> Any:
    if t.startswith("[") and t.endswith("]"):
        return [_scalar(p) for p in _split_flow(t[1:-1])]
    if t.startswith("{") and t.endswith("}"):
        out = {}
        for p in _split_flow(t[1:-1]):
            k, _, v = p.partition(":")
            out[_scalar(k)] = _scalar(v)
        return out
    raise ValueError(f"unsupported YAML flow value {t!r}")


def _split_key(content: str) -> tuple[str, str] | None:
    """Split ``key: value`` (value may be empty); None when the line is not a mapping entry."""
    quote = None
    for i, ch in enumerate(content):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{" and i == 0:
            return None
        elif ch == ":" and (i + 1 == len(content) or content[i + 1] in " \t"):
            return content[:i].strip(), content[i + 1 :].strip()
    return None


def parse_simple_yaml(text: str) -> Any:
    """Parse the block-style YAML subset used by PaddleClas/PaddleDetection export files."""
    lines: list[tuple[int, str]] = []
    for raw in text.splitlines():
        if raw.strip() in ("---", "..."):
            continue
        s = _strip_comment(raw)
        if s.strip():
            lines.append((len(s) - len(s.lstrip(" ")), s.strip()))
    if not lines:
        return None
    value, pos = _parse_block(lines, 0, lines[0][0])
    if pos != len(lines):
        raise ValueError(f"could not parse YAML near line {lines[pos][1]!r}")
    return value


def _parse_block(lines: list[tuple[int, str]], pos: int, indent: int) -> tuple[Any, int]:
    if lines[pos][1].startswith("- ") or lines[pos][1] == "-":
        return _parse_seq(lines, pos, indent)
    return _parse_map(lines, pos, indent)


def _parse_value(lines, pos, indent, rest: str) -> tuple[Any, int]:
    """Value after ``key:`` (rest of the line), possibly a nested block on the next lines."""
    if rest:
        return _scalar(rest), pos
    if pos < len(lines) and (
        lines[pos][0] > indent or (lines[pos][0] == indent and lines[pos][1].startswith("-"))
    ):
        return _parse_block(lines, pos, lines[pos][0])
    return None, pos


def _parse_map(lines, pos, indent) -> tuple[dict, int]:
    out: dict = {}
    while pos < len(lines) and lines[pos][0] == indent and not lines[pos][1].startswith("- "):
        kv = _split_key(lines[pos][1])
        if kv is None:
            raise ValueError(f"expected 'key: value' in YAML line {lines[pos][1]!r}")
        key, rest = kv
        value, pos = _parse_value(lines, pos + 1, indent, rest)
        out[_scalar(key)] = value
    return out, pos


def _parse_seq(lines, pos, indent) -> tuple[list, int]:
    out: list = []
    while pos < len(lines) and lines[pos][0] == indent and (
        lines[pos][1].startswith("- ") or lines[pos][1] == "-"
    ):
        item = lines[pos][1][1:].strip()
        if not item:
            value, pos = _parse_value(lines, pos + 1, indent, "")
            out.append(value)
            continue
        inner = indent + 2 + (len(lines[pos][1][1:]) - len(lines[pos][1][1:].lstrip(" ")) - 1)
        kv = _split_key(item)
        if kv is None:
            out.append(_scalar(item))
            pos += 1
            continue
        # "- key: value" starts a mapping whose other keys sit at the item's indent.
        lines[pos] = (inner, item)
        value, pos = _parse_map(lines, pos, inner)
        out.append(value)
    return out, pos


def dump_yaml(data: Any) -> str:
    """Write ``data`` (dicts, lists, scalars) as block YAML that :func:`load_yaml` reads back."""

    def scalar(v: Any) -> str:
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        s = str(v)
        if s == "" or _scalar(s) != s or any(c in s for c in ":#{}[],'\"") or s != s.strip():
            return json.dumps(s)
        return s

    def emit(v: Any, indent: int) -> list[str]:
        pad = " " * indent
        lines: list[str] = []
        if isinstance(v, dict):
            for k, x in v.items():
                if isinstance(x, (dict, list)) and x:
                    lines.append(f"{pad}{scalar(k)}:")
                    lines.extend(emit(x, indent + 2))
                else:
                    lines.append(f"{pad}{scalar(k)}: {scalar(x) if not isinstance(x, (dict, list)) else json.dumps(x)}")
        elif isinstance(v, list):
            for x in v:
                if isinstance(x, dict) and x:
                    sub = emit(x, indent + 2)
                    lines.append(f"{pad}- {sub[0].lstrip()}")
                    lines.extend(sub[1:])
                elif isinstance(x, list) and x:
                    lines.append(f"{pad}-")
                    lines.extend(emit(x, indent + 2))
                else:
                    lines.append(f"{pad}- {scalar(x) if not isinstance(x, (dict, list)) else json.dumps(x)}")
        else:
            lines.append(pad + scalar(v))
        return lines

    return "\n".join(emit(data, 0)) + "\n"


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
