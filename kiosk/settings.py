"""Kiosk settings in a TOML file (``settings.toml`` in the data directory).

:func:`load_settings` reads the file with :mod:`tomllib` and checks every value (type, range,
choices) and every key: a typo is an error, not silently ignored.  Errors are
:class:`SettingsError` naming the file, the ``[section]`` and the key.  A missing file means the
defaults.  :func:`save_settings` writes a complete, commented file atomically (mode 0600).

Unset optional values (``recognition.threshold``: the model's calibrated default;
``recognition.background``; ``paths.db``, ``paths.data_dir``) are simply left out of the file.
"""
from __future__ import annotations

import math
import os
import tempfile
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from kiosk import paths as _paths


class SettingsError(ValueError):
    """The settings file is not valid; the message names the file and the key."""


# ---------------------------------------------------------------------------------- checkers
# each takes the TOML value and returns the clean value or raises ValueError(reason)


def _int(lo: int, hi: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"must be a whole number, got {v!r}")
        if not lo <= v <= hi:
            raise ValueError(f"must be between {lo} and {hi}, got {v}")
        return v
    return check


def _float(lo: float, hi: float) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"must be a number, got {v!r}")
        try:
            v = float(v)
        except OverflowError:  # an integer too big for a float
            raise ValueError(f"must be between {lo:g} and {hi:g}, got a number too large") from None
        if not math.isfinite(v) or not lo <= v <= hi:
            raise ValueError(f"must be between {lo:g} and {hi:g}, got {v!r}")
        return v
    return check


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"must be true or false, got {v!r}")
    return v


def _text(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"must be non-empty text, got {v!r}")
    if any(ord(c) < 32 for c in v):
        raise ValueError("must not contain control characters")
    return v


def _choice(*choices: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in choices:
            raise ValueError(f"must be one of {', '.join(map(repr, choices))}, got {v!r}")
        return v
    return check


def _int_choice(*choices: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"must be a whole number, got {v!r}")
        if v not in choices:
            raise ValueError(f"must be {' or '.join(map(str, choices))}, got {v}")
        return v
    return check


def _source(v: Any) -> str | int:
    if isinstance(v, int) and not isinstance(v, bool):
        if not 0 <= v <= 63:
            raise ValueError(f"a camera index must be between 0 and 63, got {v}")
        return v
    if isinstance(v, str):
        return _text(v)
    raise ValueError(f'must be "auto", "demo", a camera index or a video/folder path, got {v!r}')


def _detector(v: Any) -> str:
    v = _text(v)
    if v == "tray" or (v.startswith("paddle:") and v[len("paddle:"):].strip()):
        return v
    raise ValueError(f'must be "tray" or "paddle:MODEL_DIR", got {v!r}')


def _currency(v: Any) -> str:
    if not (isinstance(v, str) and len(v) == 3 and v.isascii() and v.isalpha() and v.isupper()):
        raise ValueError(f"must be a 3-letter currency code like 'CNY', got {v!r}")
    return v


# the store server's password comes from this environment variable (or [store] password_file)
STORE_PASSWORD_ENV = "KIOSK_STORE_PASSWORD"


def check_server_url(v: Any) -> str:
    """A settings checker: a postgresql:// URL with a host and no password in it."""
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"must be a postgresql:// URL, got {v!r}")
    v = v.strip()
    try:
        parts = urlsplit(v)
    except ValueError as e:
        raise ValueError(f"is not a valid URL: {e}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError("must start with postgresql://")
    if parts.password is not None:
        raise ValueError("must not hold the password: put it in [store] password_file or "
                         f"${STORE_PASSWORD_ENV}")
    if not parts.hostname:
        raise ValueError("must name the server's host, e.g. postgresql://kiosk@10.0.0.5/store")
    return v


def _opt(doc: str, check: Callable[[Any], Any], default: Any = None, *, example: str = ""):
    """A setting; ``example`` is shown (commented out) for optional settings left unset."""
    return field(default=default, metadata={"doc": doc, "check": check, "example": example})


# --------------------------------------------------------------------------------- the tree


@dataclass(frozen=True)
class CameraSettings:
    source: str | int = _opt('"auto" (first USB camera, else the demo camera), "demo", a '
                             'camera index, or a video file / image folder path', _source, "auto")
    width: int = _opt("capture width in pixels", _int(16, 8192), 1280)
    height: int = _opt("capture height in pixels", _int(16, 8192), 720)
    fps: int = _opt("frames per second asked of the camera", _int(1, 240), 30)


@dataclass(frozen=True)
class RecognitionSettings:
    threshold: float | None = _opt("similarity below which an item is unknown (unset: the "
                                   "model's calibrated default)", _float(0.0, 1.0),
                                   example="0.5")
    k: int = _opt("nearest gallery images that vote", _int(1, 100), 5)
    settle_ms: int = _opt("how long the tray must be still before recognising", _int(0, 10000),
                          300)
    detector: str = _opt('"tray" (calibrated tray segmentation) or "paddle:MODEL_DIR"',
                         _detector, "tray")
    background: str | None = _opt("empty-tray calibration image (unset: beside the catalogue)",
                                  _text, example='"/path/to/empty_tray.png"')
    model_process: bool = _opt("run the recognition model in its own process, so the window "
                               "never waits for it (Paddle holds Python's lock while it runs)",
                               _bool, True)
    read_text: bool = _opt("read the text on packs (PP-OCRv4) to tell look-alike products "
                           "apart when their pictures are equally close", _bool, True)
    model: str | None = _opt("recognition model folder (unset: the built-in model); `kiosk "
                             "train --from-catalog` sets it when its model is better", _text,
                             example='"/srv/kiosk/models/catalog-20250101-120000"')
    adapt: bool = _opt("learn the store's own similarity from the catalogue's views (how "
                       "pictures of one product differ is weighed less), refit as views are "
                       "learned", _bool, True)
    adapt_strength: float = _opt("shrinkage of that adaptation: larger is gentler",
                                 _float(0.01, 100.0), 1.0)


@dataclass(frozen=True)
class StoreSettings:
    currency: str = _opt("currency of the prices", _currency, "CNY")
    name: str = _opt("store name shown on the screen and receipts", _text, "袋鼯麻麻")
    server: str | None = _opt("the store's PostgreSQL server, shared by all its kiosks "
                              "(postgresql://user@host[:port]/database, no password in it; "
                              "unset: this kiosk works alone)", check_server_url,
                              example='"postgresql://kiosk@10.0.0.5/store"')
    password_file: str | None = _opt("file whose first line is the server's password (else "
                                     "$KIOSK_STORE_PASSWORD, else $PGPASSWORD / ~/.pgpass)",
                                     _text, example='"/etc/kiosk/store-password"')
    kiosk_name: str | None = _opt("this kiosk's name in the store (unset: the host name)", _text,
                                  example='"Till 3"')
    price_change_in_basket: str = _opt(
        'a price changed (on any kiosk) while a basket is open: "apply" (the basket shows the '
        'new price at once) or "keep" (the basket keeps its prices; the next one has the new '
        'price); either way the kiosk says so', _choice("apply", "keep"), "apply")


@dataclass(frozen=True)
class UISettings:
    language: str = _opt('"zh_CN" or "en"', _choice("zh_CN", "en"), "zh_CN")
    kiosk_mode: bool = _opt("lock the screen to the kiosk (no window controls)", _bool, False)
    fullscreen: bool = _opt("start full screen", _bool, False)
    font_scale: float = _opt("text size factor (on top of the screen's own scaling)",
                             _float(0.5, 3.0), 1.0)
    screen_inches: float = _opt("the screen's diagonal in inches: touch targets are at least "
                                "10 mm on it", _float(5.0, 100.0), 15.6)
    touch_keyboard: bool = _opt("show an on-screen keyboard when a text field is tapped",
                                _bool, True)


@dataclass(frozen=True)
class StaffSettings:
    session_timeout_s: int = _opt("staff mode ends after this many idle seconds",
                                  _int(10, 86400), 120)
    max_pin_attempts: int = _opt("wrong PINs before a lockout", _int(1, 100), 5)
    lockout_s: int = _opt("first lockout length in seconds (doubles on repeated lockouts)",
                          _int(1, 86400), 30)
    pin_setup_on_screen: bool = _opt(
        "let the first staff PIN be chosen on the kiosk's screen; otherwise a technician sets "
        "it on the kiosk PC with `kiosk staff-pin` (always allowed on the built-in demo "
        "catalogue)", _bool, False)


@dataclass(frozen=True)
class CheckoutSettings:
    frozen_after_s: float = _opt("a camera picture that has not changed for this many seconds "
                                 "is stale: the receipt is withdrawn until a fresh picture",
                                 _float(0.5, 600.0), 3.0)
    max_sale_age_s: float = _opt("a sale is stored only from a settled picture recognised at "
                                 "most this many seconds ago (the tray still unchanged)",
                                 _float(0.5, 600.0), 10.0)
    unsure_margin: float = _opt("an item whose two best products are closer than this is sent "
                                "to the cashier instead of being charged (`kiosk calibrate` "
                                "measures it)", _float(0.0, 1.0), 0.05)
    product_floor: float | None = _opt(
        "per-product thresholds: an item is only charged as a product when its similarity "
        "reaches that product's usual similarity between its own views less this (unset: "
        "off; `kiosk calibrate` measures it)", _float(-1.0, 1.0), example="0.0")
    auto_call: bool = _opt("call the cashier by itself when an item is unknown or unsure",
                           _bool, True)


@dataclass(frozen=True)
class CashierSettings:
    session_timeout_s: int = _opt("an attendant session (opened by a cashier code or badge) "
                                  "ends after this many idle seconds", _int(5, 3600), 60)
    max_code_attempts: int = _opt("wrong cashier codes before a lockout", _int(1, 100), 5)
    lockout_s: int = _opt("first cashier-code lockout in seconds (doubles on repeats)",
                          _int(1, 86400), 30)
    shopper_same_price_choice: bool = _opt(
        "let the shopper choose between close candidates that have the same price (the bill "
        "is right either way); the choice is marked for learning", _bool, False)


@dataclass(frozen=True)
class LearningSettings:
    learn_cashier_answers: bool = _opt(
        "store the item's cut-out from this kiosk's camera as a gallery view of the product "
        "the cashier (or a barcode, or the shopper's same-price choice) said it is", _bool,
        True)
    approval: str = _opt('"auto" (learned views are searchable at once) or "queue" (they '
                         'wait for staff to approve them in staff mode)',
                         _choice("auto", "queue"), "auto")
    learn_paid_items: bool = _opt("also learn items charged as recognised once the sale is "
                                  "paid", _bool, False)
    paid_min_margin: float = _opt(
        "a paid item is learned only when its pictures put its product at least this far "
        "ahead of the next one (a close call may be a wrong charge)", _float(0.0, 1.0), 0.10)
    views_per_product: int = _opt("learned views kept per product (enrolment views are never "
                                  "dropped): over it, the view that adds least is dropped",
                                  _int(1, 1000), 20)
    near_duplicate: float = _opt("a new view at least this similar to one of the product's "
                                 "views adds nothing and is not stored", _float(0.5, 1.0),
                                 0.95)
    per_cashier_per_product_per_hour: int = _opt(
        "views one cashier may teach one product in an hour (more are not learned)",
        _int(1, 10000), 10)


@dataclass(frozen=True)
class PrinterSettings:
    kind: str = _opt('"none", "file" (ESC/POS bytes to a file), "usb", "serial" or "network"',
                     _choice("none", "file", "usb", "serial", "network"), "none")
    target: str | None = _opt('the printer: a file path, "VID:PID" in hex (usb), a device '
                              'such as /dev/ttyUSB0 (serial, 9600 baud; "/dev/ttyUSB0@19200" '
                              'for another rate) or "host[:port]" (network, port 9100 by '
                              'default)', _text,
                              example='"192.168.1.50:9100"')
    width_mm: int = _opt("paper width: 58 (32 columns) or 80 (48 columns)",
                         _int_choice(58, 80), 80)
    receipt_dir: str | None = _opt("folder where receipts are saved as PDF when there is no "
                                   "printer (unset: DATA_DIR/receipts)", _text,
                                   example='"/srv/kiosk/receipts"')


@dataclass(frozen=True)
class PathSettings:
    db: str | None = _opt("catalogue database (unset: DATA_DIR/catalog.db)", _text,
                          example='"/srv/kiosk/catalog.db"')
    data_dir: str | None = _opt("data directory (unset: KIOSK_DATA_DIR or ~/.local/share/kiosk)",
                                _text, example='"/srv/kiosk"')


_SECTIONS: dict[str, type] = {
    "camera": CameraSettings,
    "recognition": RecognitionSettings,
    "store": StoreSettings,
    "ui": UISettings,
    "staff": StaffSettings,
    "checkout": CheckoutSettings,
    "cashier": CashierSettings,
    "learning": LearningSettings,
    "printer": PrinterSettings,
    "paths": PathSettings,
}


@dataclass(frozen=True)
class Settings:
    camera: CameraSettings = field(default_factory=CameraSettings)
    recognition: RecognitionSettings = field(default_factory=RecognitionSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    ui: UISettings = field(default_factory=UISettings)
    staff: StaffSettings = field(default_factory=StaffSettings)
    checkout: CheckoutSettings = field(default_factory=CheckoutSettings)
    cashier: CashierSettings = field(default_factory=CashierSettings)
    learning: LearningSettings = field(default_factory=LearningSettings)
    printer: PrinterSettings = field(default_factory=PrinterSettings)
    paths: PathSettings = field(default_factory=PathSettings)

    def data_dir(self) -> Path:
        if self.paths.data_dir:
            return Path(self.paths.data_dir).expanduser()
        return _paths.data_dir()

    def db_path(self) -> Path:
        if self.paths.db:
            return Path(self.paths.db).expanduser()
        return self.data_dir() / "catalog.db"

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain dict (unset optional values left out), as the file holds it."""
        out: dict[str, dict[str, Any]] = {}
        for name in _SECTIONS:
            section = getattr(self, name)
            out[name] = {f.name: getattr(section, f.name) for f in fields(section)
                         if getattr(section, f.name) is not None}
        return out


def default_settings_path() -> Path:
    return _paths.data_dir() / "settings.toml"


# ---------------------------------------------------------------------------------- reading


def parse_settings(text: str, source: str = "<settings>") -> Settings:
    """Settings from TOML text; :class:`SettingsError` on any problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"{source}: not valid TOML: {e}") from None
    except RecursionError:
        raise SettingsError(f"{source}: not valid TOML: nested too deeply") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise SettingsError(f"{source}: not valid TOML: {e}") from None
    return settings_from_dict(data, source)


def settings_from_dict(data: dict[str, Any], source: str = "<settings>") -> Settings:
    if not isinstance(data, dict):
        raise SettingsError(f"{source}: expected a table of sections")
    sections: dict[str, Any] = {}
    for name, table in data.items():
        cls = _SECTIONS.get(name)
        if cls is None:
            raise SettingsError(f"{source}: unknown section [{name}] (known: "
                                f"{', '.join(_SECTIONS)})")
        if not isinstance(table, dict):
            raise SettingsError(f"{source}: {name} must be a [{name}] section, got {table!r}")
        known = {f.name: f for f in fields(cls)}
        values = {}
        for key, value in table.items():
            f = known.get(key)
            if f is None:
                raise SettingsError(f"{source}: [{name}] unknown key {key!r} (known: "
                                    f"{', '.join(known)})")
            try:
                values[key] = f.metadata["check"](value)
            except ValueError as e:
                raise SettingsError(f"{source}: [{name}] {key} {e}") from None
        sections[name] = cls(**values)
    return Settings(**sections)


def load_settings(path: str | Path | None = None) -> Settings:
    """The settings in ``path`` (default :func:`default_settings_path`); defaults when the
    file does not exist."""
    path = Path(path) if path is not None else default_settings_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Settings()
    except OSError as e:
        raise SettingsError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SettingsError(f"{path}: not UTF-8 text (byte {e.start})") from None
    return parse_settings(text, str(path))


# ---------------------------------------------------------------------------------- writing


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"cannot write {v!r} to TOML settings")
        text = repr(v)
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(v, str):
        out = []
        for c in v:
            if c == "\\":
                out.append("\\\\")
            elif c == '"':
                out.append('\\"')
            elif ord(c) < 32 or ord(c) == 127:
                out.append(f"\\u{ord(c):04x}")
            else:
                out.append(c)
        return '"' + "".join(out) + '"'
    raise TypeError(f"cannot write {type(v).__name__} to TOML settings")


def format_settings(settings: Settings) -> str:
    """The settings as a commented TOML document."""
    lines = ["# Self-checkout kiosk settings.  Delete a line to get its default back.", ""]
    for name in _SECTIONS:
        section = getattr(settings, name)
        lines.append(f"[{name}]")
        for f in fields(section):
            lines.append(f"# {f.metadata['doc']}")
            value = getattr(section, f.name)
            if value is None:
                lines.append(f"# {f.name} = {f.metadata['example']}")
            else:
                lines.append(f"{f.name} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def save_settings(settings: Settings, path: str | Path | None = None) -> Path:
    """Write ``settings`` to ``path`` (default :func:`default_settings_path`) atomically: a
    reader sees the old file or the new one, never half of one.  The file has mode 0600."""
    path = Path(path) if path is not None else default_settings_path()
    text = format_settings(settings)
    parse_settings(text, str(path))  # never write a file we could not read back
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def default_settings() -> Settings:
    return Settings()


def with_changes(settings: Settings, section: str, **changes: Any) -> Settings:
    """A copy with ``changes`` in ``section``, each checked like a file value."""
    cls = _SECTIONS.get(section)
    if cls is None:
        raise SettingsError(f"unknown section [{section}]")
    current = getattr(settings, section)
    known = {f.name: f for f in fields(cls)}
    clean = {}
    for key, value in changes.items():
        f = known.get(key)
        if f is None:
            raise SettingsError(f"[{section}] unknown key {key!r}")
        try:
            clean[key] = None if value is None and f.default is None else f.metadata["check"](value)
        except ValueError as e:
            raise SettingsError(f"[{section}] {key} {e}") from None
    return replace(settings, **{section: replace(current, **clean)})

