"""Receipts on a thermal receipt printer (ESC/POS), without Qt.

* :func:`receipt_layout` lays a sale out for a 32-column (58 mm) or 48-column (80 mm) roll: store
  name, sale number and time, one line per item (name, ``qty x unit price``, amount; a name
  too long for its column takes a line of its own, wrapped at the paper width, with the
  numbers on the line below), the total, and the sale number as a QR code.  Widths are
  counted as the printer prints them: ASCII takes one column, every other character
  (Chinese, full-width signs, East Asian width W/F/A) two.
* :func:`escpos_bytes` turns the layout into ESC/POS commands (via python-escpos's ``Dummy``
  backend): the Chinese character mode is selected (``FS &``) and the text is sent as
  GB18030 bytes, the way Chinese ESC/POS printers expect it (python-escpos's own text path
  only knows single-byte code pages).
* :func:`print_receipt` sends a sale to the printer of the ``[printer]`` settings (``file``,
  ``usb``, ``serial``, ``network``) and returns a :class:`PrintResult`: never an exception,
  and a message a shopper can read ("The printer is out of paper ...") in their language.
  The sale is already stored; printing only hands over a copy.
* :func:`preview_image` draws the printed roll (PIL, the project's CJK font) for a look
  without paper.
"""
from __future__ import annotations

import logging
import os
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiosk.money import format_price

log = logging.getLogger(__name__)

#: characters per line of font A (12 x 24 dots) by paper width in mm
COLUMNS = {58: 32, 80: 48}

ESC, FS, GS = b"\x1b", b"\x1c", b"\x1d"
INIT = ESC + b"@"
CHINESE_ON = FS + b"&"  # select the Chinese (Kanji) character mode: GB18030 double bytes
CHINESE_OFF = FS + b"."
QR_COMMAND = GS + b"(k"  # native 2-D code (QR) function
ENCODING = "gb18030"

_LABELS = {
    "zh": {"store": "自助结账", "number": "小票号：{n}", "item": "商品", "qty": "数量 x 单价",
           "amount": "金额", "total": "合计", "count": "共 {n} 件", "thanks": "谢谢惠顾！"},
    "en": {"store": "Self-checkout", "number": "Receipt no. {n}", "item": "Item",
           "qty": "Qty x Price", "amount": "Amount", "total": "Total", "count": "{n} item(s)",
           "thanks": "Thank you for shopping with us!"},
}

_MESSAGES = {
    "printed": ("小票已打印，请取走。", "Your receipt has been printed. Please take it."),
    "printing": ("正在打印小票……", "Printing your receipt..."),
    "saved": ("小票已保存为 {path}。", "The receipt was saved as {path}."),
    "no_printer": ("本机没有小票打印机。您的购买已记录，小票号 {n}。",
                   "There is no receipt printer at this kiosk. Your purchase is recorded as "
                   "receipt no. {n}."),
    "offline": ("打印机未连接。您的购买已记录（小票号 {n}），请联系工作人员。",
                "The printer is offline. Your purchase is recorded (receipt no. {n}); please "
                "ask a member of staff."),
    "no_paper": ("打印机缺纸。您的购买已记录（小票号 {n}），请联系工作人员。",
                 "The printer is out of paper. Your purchase is recorded (receipt no. {n}); "
                 "please ask a member of staff."),
    "error": ("小票打印失败。您的购买已记录（小票号 {n}），请联系工作人员。",
              "The receipt could not be printed. Your purchase is recorded (receipt no. {n}); "
              "please ask a member of staff."),
    "save_failed": ("小票无法保存。您的购买已记录（小票号 {n}），请联系工作人员。",
                    "The receipt could not be saved. Your purchase is recorded (receipt no. "
                    "{n}); please ask a member of staff."),
}


def _zh(language: str | None) -> bool:
    return str(language or "").lower().startswith("zh")


def message(key: str, language: str | None = "zh_CN", **values: Any) -> str:
    """A shopper-facing sentence (``_MESSAGES``) in ``language`` ("zh_CN" or "en")."""
    zh, en = _MESSAGES[key]
    return (zh if _zh(language) else en).format(**values)


def labels(language: str | None = "zh_CN") -> dict[str, str]:
    return _LABELS["zh" if _zh(language) else "en"]


# ------------------------------------------------------------------------- text widths
def char_width(c: str) -> int:
    """Printer columns of one character: 0 for control characters, 1 for ASCII, 2 for
    everything else (a Chinese printer prints every GB18030 multi-byte character as one
    double-width glyph; this covers East Asian width W, F and A)."""
    o = ord(c)
    if o < 0x20 or 0x7F <= o < 0xA0:
        return 0
    return 1 if o < 0x7F else 2


def text_width(text: str) -> int:
    return sum(char_width(c) for c in text)


def clean(text: Any) -> str:
    """Text as the printer gets it: NFC, control characters as spaces, the yen sign as the
    full-width ``￥`` every Chinese printer font has (U+00A5 needs 4 GB18030 bytes)."""
    text = unicodedata.normalize("NFC", str(text))
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c
                   for c in text)
    return text.replace("¥", "￥").strip()


def _tokens(text: str) -> list[str]:
    """Words of ASCII letters and digits, single spaces, single wide characters."""
    tokens: list[str] = []
    word = ""
    for c in text:
        if c == " " or char_width(c) != 1:
            if word:
                tokens.append(word)
                word = ""
            tokens.append(c)
        else:
            word += c
    if word:
        tokens.append(word)
    return tokens


def wrap(text: str, width: float, next_width: float | None = None,
         measure=None) -> list[str]:
    """``text`` in lines of at most ``width`` columns (``next_width`` for the lines after the
    first): breaks at spaces where a word fits, between any two Chinese characters, and
    inside a word only when it is longer than a line.  ``measure(text)``: the width of a text
    in other units (a font's advance, for the PDF); default :func:`text_width`."""
    measure = measure or text_width
    later = next_width if next_width is not None else width
    lines: list[str] = []
    line = ""
    for tok in _tokens(text):
        if tok == " ":
            if line and measure(line + " ") <= width:
                line += " "
            continue
        if measure(line + tok) <= width:
            line += tok
            continue
        if line.strip():
            lines.append(line.rstrip())
            width = later
        line = ""
        while measure(tok) > width:  # a word longer than a whole line
            cut = 1
            while cut < len(tok) and measure(tok[:cut + 1]) <= width:
                cut += 1
            lines.append(tok[:cut])
            tok = tok[cut:]
            width = later
        line = tok
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return lines


def _ljust(text: str, width: int) -> str:
    return text + " " * max(0, width - text_width(text))


def _rjust(text: str, width: int) -> str:
    return " " * max(0, width - text_width(text)) + text


def _center(text: str, width: int) -> str:
    pad = max(0, width - text_width(text))
    return " " * (pad // 2) + text


def _spread(left: str, right: str, width: int) -> str:
    return left + " " * max(1, width - text_width(left) - text_width(right)) + right


def local_time(created_at: str | None) -> str:
    """A stored sale time (UTC, SQLite ``CURRENT_TIMESTAMP`` style or ISO) in local time."""
    if not created_at:
        return datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    try:
        t = datetime.fromisoformat(created_at)
    except ValueError:
        return str(created_at)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S")


# ------------------------------------------------------------------------------ layout
@dataclass(frozen=True)
class PrintLine:
    """One line of the printed receipt.  ``style``: "" (plain), "title" (bold, double
    height), "total" (bold, double height), "qr" (``text`` is the QR code's content)."""

    text: str
    style: str = ""


def columns_for(width_mm: int) -> int:
    try:
        return COLUMNS[int(width_mm)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"paper width must be 58 or 80 mm, got {width_mm!r}") from None


def qr_content(record: dict) -> str:
    """What the receipt's QR code holds: the sale number."""
    return str(record["id"])


def receipt_layout(record: dict, columns: int = 48, store_name: str = "",
                   language: str | None = "zh_CN") -> list[PrintLine]:
    """The receipt of ``record`` (``Catalog.get_transaction``) for ``columns`` columns; no
    line is wider than ``columns`` (see :func:`text_width`)."""
    if columns < 24:
        raise ValueError(f"a receipt needs at least 24 columns, got {columns}")
    lab = labels(language)
    cur = record.get("currency") or "CNY"
    out: list[PrintLine] = []
    for part in wrap(clean(store_name or lab["store"]), columns):
        out.append(PrintLine(_center(part, columns), "title"))
    number = clean(lab["number"].format(n=record["id"]))
    when = local_time(record.get("created_at"))
    if text_width(number) + 1 + text_width(when) <= columns:
        out.append(PrintLine(_spread(number, when, columns)))
    else:
        out += [PrintLine(number), PrintLine(when)]
    rule = PrintLine("-" * columns)
    out.append(rule)

    rows = []
    for line in record["lines"]:
        unit = line.get("unit_price")
        qty = clean(str(line["qty"]))
        mid = f"{qty} x {clean(format_price(unit, cur))}" if unit is not None else qty
        rows.append((clean(line["name"]) or "?", mid, clean(format_price(line["amount"], cur))))
    amount_w = max([text_width(lab["amount"])] + [text_width(r[2]) for r in rows])
    mid_w = max([text_width(lab["qty"])] + [text_width(r[1]) for r in rows])
    name_w = columns - amount_w - mid_w - 2
    if name_w >= columns // 4:  # name | qty x price | amount, names wrap in their column
        out.append(PrintLine(_ljust(lab["item"], name_w) + " " + _rjust(lab["qty"], mid_w)
                             + " " + _rjust(lab["amount"], amount_w)))
        for name, mid, amount in rows:
            numbers = " " + _rjust(mid, mid_w) + " " + _rjust(amount, amount_w)
            if text_width(name) <= name_w:
                out.append(PrintLine(_ljust(name, name_w) + numbers))
                continue
            # a long name on a line (or more) of its own, its numbers below it in their columns
            out += [PrintLine(p) for p in wrap(name, columns)]
            out.append(PrintLine(" " * name_w + numbers))
    else:  # numbers too wide to share a line with a name: name, then the numbers below it
        out.append(PrintLine(_spread(lab["item"], lab["amount"], columns)))
        for name, mid, amount in rows:
            out += [PrintLine(p) for p in wrap(name, columns)]
            for p in wrap(_spread("  " + mid, amount, columns), columns):
                out.append(PrintLine(p))
    out.append(rule)
    count = sum(int(line["qty"]) for line in record["lines"])
    out.append(PrintLine(lab["count"].format(n=count)))
    total = clean(format_price(record["total"], cur))
    out.append(PrintLine(_spread(lab["total"], total, columns), "total"))
    out.append(PrintLine(""))
    out.append(PrintLine(qr_content(record), "qr"))
    out.append(PrintLine(_center(clean(lab["thanks"]), columns)))
    return out


def receipt_lines(record: dict, columns: int = 48, store_name: str = "",
                  language: str | None = "zh_CN") -> list[str]:
    """The printed text of the receipt, line by line (the QR code left out)."""
    return [ln.text for ln in receipt_layout(record, columns, store_name, language)
            if ln.style != "qr"]


# ----------------------------------------------------------------------------- ESC/POS
def _escpos():
    """python-escpos, imported on first use.  Its capabilities cache goes to a private
    folder instead of a new temporary folder per process."""
    if "ESCPOS_CAPABILITIES_PICKLE_DIR" not in os.environ:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        cache = base / "kiosk" / "escpos"
        try:
            cache.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = str(cache)
        except OSError:
            pass
    import escpos.printer  # noqa: F401

    return escpos


def write_receipt(printer, record: dict, columns: int = 48, store_name: str = "",
                  language: str | None = "zh_CN") -> None:
    """Send the receipt of ``record`` to ``printer`` (any python-escpos backend)."""
    printer._raw(INIT + CHINESE_ON)
    for line in receipt_layout(record, columns, store_name, language):
        if line.style == "qr":
            printer.set(align="center")
            printer.qr(line.text, size=6 if columns >= 48 else 5, native=True)
            printer._raw(b"\n")
            printer.set(align="left")
            continue
        big = line.style in ("title", "total")
        if big:
            printer.set(bold=True, double_height=True)
        printer._raw(line.text.encode(ENCODING, errors="replace") + b"\n")
        if big:
            printer.set(bold=False, normal_textsize=True)
    printer._raw(CHINESE_OFF)
    printer.cut()


def escpos_bytes(record: dict, columns: int = 48, store_name: str = "",
                 language: str | None = "zh_CN") -> bytes:
    """The ESC/POS byte stream of the receipt (rendered on python-escpos's Dummy backend)."""
    dummy = _escpos().printer.Dummy()
    write_receipt(dummy, record, columns, store_name, language)
    return dummy.output


@dataclass
class PrintResult:
    """What came of printing a receipt.  ``status``: "printed", "saved", "no_printer",
    "offline", "no_paper", "error" or "save_failed"; ``message``: for the shopper;
    ``detail``: for the log and the technician."""

    ok: bool
    status: str
    message: str
    detail: str = ""
    path: Path | None = field(default=None)


class _Failure(Exception):
    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def _printer_settings(settings):
    return getattr(settings, "printer", settings)


def open_printer(settings):
    """A python-escpos backend for the ``[printer]`` settings (not connected yet); None for
    ``kind = "none"``.  ``ValueError`` for a target it cannot use."""
    p = _printer_settings(settings)
    kind = getattr(p, "kind", "none") or "none"
    target = getattr(p, "target", None)
    if kind == "none":
        return None
    if not target:
        raise ValueError(f'[printer] kind = "{kind}" needs a target')
    printers = _escpos().printer
    if kind == "file":
        return printers.File(str(Path(target).expanduser()))
    if kind == "network":
        host, _, port = str(target).rpartition(":") if ":" in str(target) else (target, "", "")
        return printers.Network(host or str(target), int(port) if port else 9100, timeout=5)
    if kind == "usb":
        vid, _, pid = str(target).partition(":")
        try:
            return printers.Usb(int(vid, 16), int(pid, 16), timeout=5000)
        except ValueError:
            raise ValueError(f'[printer] a USB target is "VID:PID" in hex, got {target!r}') from None
    if kind == "serial":
        dev, _, baud = str(target).partition("@")
        return printers.Serial(dev, baudrate=int(baud) if baud else 9600, timeout=2)
    raise ValueError(f"[printer] unknown kind {kind!r}")


def _ask(printer, query: bytes) -> int | None:
    """One real-time status byte (DLE EOT n), or None when the printer does not answer."""
    printer._raw(query)
    answer = printer._read()
    return int(answer[0]) if answer is not None and len(answer) else None


def _check_status(printer) -> None:
    """Ask the printer whether it is online and has paper (DLE EOT 1 and 4).  A backend
    that cannot read (a file) or a printer that does not answer is taken to be fine."""
    if type(printer)._read is _escpos().escpos.Escpos._read:
        return  # write-only backend (File, Dummy): sending a query would only add bytes
    sock = getattr(printer, "_device", None)
    settimeout = getattr(sock, "settimeout", None)
    if settimeout is not None:
        settimeout(1.5)
    try:
        online = _ask(printer, b"\x10\x04\x01")
        if online is None:
            return
        paper = _ask(printer, b"\x10\x04\x04")
    except Exception as exc:  # noqa: BLE001 - no status answer: print anyway
        log.debug("printer status not available: %s", exc)
        return
    finally:
        if settimeout is not None:
            settimeout(5)
    if paper is not None and paper & 0x60:  # paper-end sensor
        raise _Failure("no_paper", f"the printer reports no paper (status {paper:#04x})")
    if online & 0x08:
        raise _Failure("offline", f"the printer reports it is offline (status {online:#04x})")


def print_receipt(record: dict, settings, store_name: str = "",
                  language: str | None = "zh_CN", *, printer=None,
                  check_status: bool = True) -> PrintResult:
    """Print the receipt of ``record`` on the configured printer (``settings``: the kiosk's
    :class:`~kiosk.settings.Settings` or its ``printer`` section).  Never raises: a failure
    is a :class:`PrintResult` whose ``message`` a shopper can read.  ``printer``: an already
    made python-escpos backend instead of the configured one."""
    number = record.get("id", "?") if isinstance(record, dict) else "?"

    def fail(status: str, detail: str) -> PrintResult:
        log.warning("receipt %s not printed (%s): %s", number, status, detail)
        return PrintResult(False, status, message(status, language, n=number), detail)

    try:
        p = _printer_settings(settings)
        columns = columns_for(getattr(p, "width_mm", 80) or 80)
        data = escpos_bytes(record, columns, store_name, language)
        if printer is None:
            printer = open_printer(settings)
            if printer is None:
                return PrintResult(False, "no_printer", message("no_printer", language, n=number),
                                   '[printer] kind = "none"')
    except Exception as exc:  # noqa: BLE001 - a bad setting or a missing library
        return fail("error", f"{type(exc).__name__}: {exc}")
    errors = _escpos().exceptions
    try:
        try:
            printer.open()
        except errors.DeviceNotFoundError as exc:
            raise _Failure("offline", str(exc).strip()) from None
        except (OSError, ValueError) as exc:  # e.g. pyusb without a libusb backend
            raise _Failure("offline", f"{type(exc).__name__}: {exc}") from None
        if check_status:
            _check_status(printer)
        try:
            printer._raw(data)
            flush = getattr(printer, "flush", None)
            if flush is not None:
                flush()
        except Exception as exc:  # noqa: BLE001 - cable pulled, socket reset, disk full
            raise _Failure("error", f"while printing: {type(exc).__name__}: {exc}") from None
    except _Failure as exc:
        return fail(exc.status, str(exc))
    except Exception as exc:  # noqa: BLE001 - whatever the backend throws, never to the GUI
        return fail("error", f"{type(exc).__name__}: {exc}")
    finally:
        try:
            printer.close()
        except Exception:  # noqa: BLE001
            pass
    log.info("receipt %s printed (%d bytes)", number, len(data))
    return PrintResult(True, "printed", message("printed", language), f"{len(data)} bytes")


# ------------------------------------------------------------------------ checking
def _norm(text: str) -> str:
    """For comparing printed text: NFKC (full-width signs, CJK radicals), no spaces."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def receipt_text_problems(text: str, record: dict) -> list[str]:
    """What is wrong with the text read back from a printed receipt (a PDF through
    ``pdftotext -layout``, or the ESC/POS bytes decoded): every item, in the sale's order, on
    a line of its own that ends with its quantity, unit price and amount, its name before
    them (a long name goes on over the next lines, or stands above the numbers), and the
    total after the items.  Empty when all is there."""
    cur = record.get("currency") or "CNY"
    lines = [_norm(ln) for ln in text.splitlines() if ln.strip()]
    amounts = {_norm(format_price(line["amount"], cur)) for line in record["lines"]}
    problems: list[str] = []
    at = 0
    for line in record["lines"]:
        name, qty = _norm(str(line["name"])), str(line["qty"])
        amount = _norm(format_price(line["amount"], cur))
        unit = (_norm(format_price(line["unit_price"], cur))
                if line.get("unit_price") is not None else "")
        for i in range(at, len(lines)):
            rest = lines[i]
            if not rest.endswith(amount):
                continue
            rest = rest[:-len(amount)]
            if unit and rest.endswith(unit):
                rest = rest[:-len(unit)]
            rest = rest[:-1] if rest.endswith("x") else rest
            if not rest.endswith(qty):
                continue
            rest = rest[:-len(qty)]  # the start of the name, or nothing: the name is above
            after = ""
            for nxt in lines[i + 1:]:
                if len(rest + after) >= len(name) or any(nxt.endswith(a) for a in amounts):
                    break
                after += nxt
            if (rest and rest + after == name) or (
                    not rest and "".join(lines[at:i]).endswith(name)):
                at = i + 1
                break
        else:
            problems.append(f"no line with {line['name']!r} x{line['qty']} "
                            f"{format_price(line['amount'], cur)}")
    total = _norm(format_price(record["total"], cur))
    if not any(ln.endswith(total) for ln in lines[at:]):
        problems.append(f"no total {format_price(record['total'], cur)} after the items")
    return problems


# ------------------------------------------------------------------------ PDF receipts
def receipt_dir(settings) -> Path:
    """Where kiosk-mode receipts are saved as PDF: ``[printer] receipt_dir``, else
    ``DATA_DIR/receipts``."""
    p = _printer_settings(settings)
    folder = getattr(p, "receipt_dir", None)
    if folder:
        return Path(folder).expanduser()
    data_dir = getattr(settings, "data_dir", None)
    if callable(data_dir):
        return data_dir() / "receipts"
    from kiosk.paths import data_dir as default_data_dir

    return default_data_dir() / "receipts"


def receipt_file_name(record: dict) -> str:
    return f"receipt-{record['id']}.pdf"


# ---------------------------------------------------------------------------- preview
def _glyph(c: str, cells: int, cell: int, bold: bool):
    """One character as the printer draws it: a mask ``cells`` x ``cell`` wide and 2``cell``
    high, the glyph centred and squeezed into its cells when the font's is wider (font A is
    monospaced: 12 x 24 dots, Chinese 24 x 24)."""
    from PIL import Image, ImageDraw

    from kiosk.fonts import cjk_font

    font = cjk_font(2 * cell - 2)
    box_w, box_h = cells * cell, 2 * cell
    left, _top, right, _bottom = font.getbbox(c, anchor="mm")
    need = max(box_w, int(right - left) + 2)
    img = Image.new("L", (need, box_h), 0)
    draw = ImageDraw.Draw(img)
    draw.text((need / 2, box_h / 2), c, font=font, fill=255, anchor="mm")
    if bold:  # emphasized mode: the dots doubled one to the right
        draw.text((need / 2 + 1, box_h / 2), c, font=font, fill=255, anchor="mm")
    return img.resize((box_w, box_h)) if need > box_w else img


def preview_image(record: dict, columns: int = 32, store_name: str = "",
                  language: str | None = "zh_CN", *, cell: int = 12):
    """A picture of the printed roll (PIL image, 1 pixel = 1 dot): font A cells (``cell`` x
    2``cell``; ASCII one cell, other characters two), bold double height where the printer
    prints it so, and the QR code."""
    from PIL import Image

    margin = cell
    width = columns * cell + 2 * margin
    rows: list[Image.Image] = []
    for line in receipt_layout(record, columns, store_name, language):
        if line.style == "qr":
            import qrcode

            qr = qrcode.QRCode(box_size=6 if columns >= 48 else 5, border=2)
            qr.add_data(line.text)
            img = qr.make_image().get_image().convert("L")
            row = Image.new("L", (width, img.height), 255)
            row.paste(img, ((width - img.width) // 2, 0))
            rows.append(row)
            continue
        big = line.style in ("title", "total")
        row = Image.new("L", (width, 2 * cell), 255)
        x = margin
        for c in line.text:
            w = char_width(c)
            if w and not c.isspace():
                row.paste(0, (x, 0), _glyph(c, w, cell, big))
            x += w * cell
        if big:
            row = row.resize((width, 4 * cell))
        rows.append(row)
    height = sum(r.height for r in rows) + 2 * margin
    paper = Image.new("L", (width, height), 255)
    y = margin
    for r in rows:
        paper.paste(r, (0, y))
        y += r.height
    return paper
