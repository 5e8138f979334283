"""The final receipt after a sale: shown, printed, or saved as PDF.

The PDF (and a print on an office printer outside kiosk mode) is drawn for an 80 mm roll, one
line per item, the page as long as the receipt.  In kiosk mode (``MainWindow.locked`` or
``[ui] kiosk_mode``) no desktop dialog opens: *Print* goes to the ``[printer]`` of the
settings (:mod:`kiosk.checkout.printer`), *Save as PDF* writes ``receipt-<sale no.>.pdf`` into
``[printer] receipt_dir`` (default ``DATA_DIR/receipts``), and the outcome is shown in plain
words in the dialog.
"""
from __future__ import annotations

import html
import logging
from pathlib import Path

from PySide6.QtCore import QEvent, QMarginsF, QPointF, QRectF, QSizeF, Qt, QTimer
from PySide6.QtGui import (QFont, QFontMetricsF, QPageLayout, QPageSize, QPainter, QPdfWriter,
                           QPen)
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
)

from kiosk.checkout import printer as receipt_printer
from kiosk.money import format_price

log = logging.getLogger(__name__)

AUTO_CLOSE_MS = 90_000
PAGE_WIDTH_MM = 80.0
MARGIN_MM = 4.0


def _local_time(created_at: str | None) -> str:
    return receipt_printer.local_time(created_at)


_CJK_RADICALS = ((0x2E80, 0x2FDF), (0x31C0, 0x31EF))


def _glyph_folds() -> dict[str, str]:
    """CJK radicals -> the ideograph drawn with the same glyph in the receipt font."""
    import unicodedata

    from PySide6.QtGui import QRawFont

    from kiosk.fonts import cjk_font_path

    raw = QRawFont(str(cjk_font_path()), 12)
    first: dict[int, str] = {}
    for cp in range(0x4E00, 0xA000):
        g = raw.glyphIndexesForString(chr(cp))
        if g and g[0]:
            first.setdefault(g[0], chr(cp))
    folds = {}
    for lo, hi in _CJK_RADICALS:
        for cp in range(lo, hi + 1):
            c = chr(cp)
            g = raw.glyphIndexesForString(c)
            if g and g[0] in first:
                folds[c] = first[g[0]]
            elif unicodedata.normalize("NFKC", c) != c:
                folds[c] = unicodedata.normalize("NFKC", c)
    return folds


_FOLDS: dict[str, str] | None = None


def pdf_text(path: str | Path) -> str | None:
    """The text of a receipt PDF as ``pdftotext -layout`` reads it, or None when pdftotext
    (Debian ``poppler-utils``) is not installed.  Qt's PDF text layer names a glyph by the
    lowest code point that shows it, so 小 reads back as ⼩ (KANGXI RADICAL SMALL) and 见 as
    ⻅: such radicals are folded back to the ideograph with the same glyph."""
    import shutil
    import subprocess

    global _FOLDS
    tool = shutil.which("pdftotext")
    if tool is None:
        return None
    out = subprocess.run([tool, "-layout", "-enc", "UTF-8", str(path), "-"], capture_output=True,
                         check=True, timeout=60).stdout.decode("utf-8", "replace")
    if any(lo <= ord(c) <= hi for c in out for lo, hi in _CJK_RADICALS):
        if _FOLDS is None:
            _FOLDS = _glyph_folds()
        out = "".join(_FOLDS.get(c, c) for c in out)
    return out


class _ReceiptPainter:
    """Lays out (``painter`` None: measures only) and draws a receipt ``width`` device pixels
    wide on a paint device; returns the height used."""

    def __init__(self, texts: dict, transaction: dict, family: str, device) -> None:
        self.t, self.tx, self.device = texts, transaction, device
        self.mm = device.logicalDpiX() / 25.4  # device pixels per millimetre

        def font(points: float, bold: bool = False) -> QFont:
            f = QFont(family)
            f.setPointSizeF(points)
            f.setBold(bold)
            # no language-specific glyph forms (OpenType 'locl'): those glyphs have no
            # character of their own in the font, so the PDF's text layer would lose them
            f.setFeature(QFont.Tag("locl"), 0)
            return f

        self.body, self.head = font(8.5), font(8.5, True)
        self.title, self.big = font(12, True), font(11, True)

    def metrics(self, font: QFont) -> QFontMetricsF:
        return QFontMetricsF(font, self.device)

    def run(self, painter: QPainter | None, left: float, width: float) -> float:
        tx, t, mm = self.tx, self.t, self.mm
        cur = tx.get("currency", "CNY")
        y = 0.0

        def text(s: str, font: QFont, x: float, w: float, align, line_y: float) -> None:
            """``s`` in the box (x, w) of the line at ``line_y``, word by word: Qt's PDF
            text layer names the space glyph U+0001, a gap reads as a space everywhere."""
            if painter is None:
                return
            painter.setPen(Qt.GlobalColor.black)
            painter.setFont(font)
            fm = self.metrics(font)
            full = fm.horizontalAdvance(s)
            if align == Qt.AlignmentFlag.AlignRight:
                x += w - full
            elif align == Qt.AlignmentFlag.AlignHCenter:
                x += (w - full) / 2
            start = 0
            for word in s.split(" "):
                if word:
                    painter.drawText(QPointF(x + fm.horizontalAdvance(s[:start]),
                                             line_y + fm.ascent()), word)
                start += len(word) + 1

        def centred(s: str, font: QFont) -> None:
            nonlocal y
            fm = self.metrics(font)
            for part in receipt_printer.wrap(s, width, measure=fm.horizontalAdvance):
                text(part, font, left, width, Qt.AlignmentFlag.AlignHCenter, y)
                y += fm.height()

        def rule() -> None:
            nonlocal y
            y += 1.2 * mm
            if painter is not None:
                painter.setPen(QPen(Qt.GlobalColor.black, max(1.0, 0.25 * mm)))
                painter.drawLine(QPointF(left, y), QPointF(left + width, y))
            y += 1.2 * mm

        centred(t["store"], self.title)
        y += 0.8 * mm
        centred(t["number"], self.body)
        centred(_local_time(tx.get("created_at")), self.body)
        rule()
        # columns: item | qty | unit price | amount (numbers right-aligned)
        fb, fh = self.metrics(self.body), self.metrics(self.head)
        rows = [(str(line["name"]), str(line["qty"]),
                 format_price(line["unit_price"], cur) if line.get("unit_price") is not None
                 else "", format_price(line["amount"], cur)) for line in tx["lines"]]
        gap = 2.5 * mm
        cols = []
        for i, head in enumerate((t["qty"], t["unit"], t["amount"]), start=1):
            cols.append(max([fh.horizontalAdvance(head)]
                            + [fb.horizontalAdvance(r[i]) for r in rows]))
        name_w = max(width * 0.3, width - sum(cols) - 3 * gap)
        xs = [left + name_w + gap]
        for w in cols[:-1]:
            xs.append(xs[-1] + w + gap)
        right = Qt.AlignmentFlag.AlignRight

        def row(cells, font: QFont, fm: QFontMetricsF) -> None:
            nonlocal y
            parts = receipt_printer.wrap(cells[0], name_w, measure=fm.horizontalAdvance)
            text(parts[0], font, left, name_w, Qt.AlignmentFlag.AlignLeft, y)
            for x, w, cell in zip(xs, cols, cells[1:]):
                text(cell, font, x, w, right, y)
            y += fm.height()
            for part in parts[1:]:
                text(part, font, left + 2 * mm, name_w - 2 * mm, Qt.AlignmentFlag.AlignLeft, y)
                y += fm.height()
            y += 0.6 * mm

        row((t["item"], t["qty"], t["unit"], t["amount"]), self.head, fh)
        for r in rows:
            row(r, self.body, fb)
        rule()
        fg = self.metrics(self.big)
        text(t["total"], self.big, left, width, Qt.AlignmentFlag.AlignLeft, y)
        text(format_price(tx["total"], cur), self.big, left, width, right, y)
        y += fg.height() + 2 * mm
        y = self._qr(painter, left, width, y)
        centred(t["thanks"], self.body)
        return y

    def _qr(self, painter: QPainter | None, left: float, width: float, y: float) -> float:
        """The sale number as a QR code, as on the printed roll."""
        try:
            import qrcode
        except ImportError:
            return y
        qr = qrcode.QRCode(border=0)
        qr.add_data(receipt_printer.qr_content(self.tx))
        qr.make(fit=True)
        matrix = qr.get_matrix()
        cell = 18 * self.mm / len(matrix)  # an 18 mm square
        x0 = left + (width - cell * len(matrix)) / 2
        if painter is not None:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(Qt.GlobalColor.black)
            for r, cells in enumerate(matrix):
                for c, dark in enumerate(cells):
                    if dark:
                        painter.drawRect(QRectF(x0 + c * cell, y + r * cell, cell, cell))
            painter.setBrush(Qt.BrushStyle.NoBrush)
        return y + cell * len(matrix) + 2 * self.mm


class ReceiptDialog(QDialog):
    def __init__(self, transaction: dict, store_name: str = "", parent=None, *,
                 settings=None, kiosk_mode: bool | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ReceiptDialog")
        self.transaction = transaction
        self.store_name = store_name
        # the window's settings and kiosk mode unless given (MainWindow.settings / .locked)
        self.settings = settings if settings is not None else getattr(parent, "settings", None)
        self._kiosk_mode = kiosk_mode
        self.last_result: receipt_printer.PrintResult | None = None
        self._status: tuple[str, dict] | None = None
        self._print_task = None
        self.resize(560, 760)
        self.view = QTextBrowser()
        self.status_label = QLabel(objectName="ReceiptStatus", wordWrap=True)
        self.status_label.hide()
        self.print_button = QPushButton()
        self.print_button.clicked.connect(self.print_receipt)
        self.pdf_button = QPushButton()
        self.pdf_button.clicked.connect(self._ask_pdf)
        self.close_button = QPushButton(objectName="PrimaryButton")
        self.close_button.clicked.connect(self.accept)
        lay = QVBoxLayout(self)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.status_label)
        row = QHBoxLayout()
        row.addWidget(self.print_button)
        row.addWidget(self.pdf_button)
        row.addStretch(1)
        row.addWidget(self.close_button)
        lay.addLayout(row)
        self._auto_close = QTimer(self, singleShot=True, interval=AUTO_CLOSE_MS)
        self._auto_close.timeout.connect(self.accept)
        self._auto_close.start()
        self.retranslate()

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Receipt"))
        self.print_button.setText(self.tr("Print"))
        self.pdf_button.setText(self.tr("Save as PDF"))
        self.close_button.setText(self.tr("New checkout"))
        self.view.setHtml(self.html())
        if self._status is not None:
            key, values = self._status
            self.status_label.setText(receipt_printer.message(key, self.language(), **values))

    # ------------------------------------------------------------------ kiosk mode
    def kiosk_mode(self) -> bool:
        """Kiosk mode: the window is locked down, or the settings say ``[ui] kiosk_mode``."""
        if self._kiosk_mode is not None:
            return self._kiosk_mode
        if getattr(self.parent(), "locked", False):
            return True
        return bool(getattr(getattr(self.settings, "ui", None), "kiosk_mode", False))

    def language(self) -> str:
        from kiosk.ui import i18n

        return i18n.current_language()

    def _printer_settings(self):
        if self.settings is None:
            from kiosk.settings import Settings

            return Settings()
        return self.settings

    def _show_status(self, key: str, **values) -> None:
        self._status = (key, values)
        self.status_label.setText(receipt_printer.message(key, self.language(), **values))
        self.status_label.show()
        if self.kiosk_mode():  # time to read it, then back to the shopper screen
            self._auto_close.start()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def html(self) -> str:
        tx = self.transaction
        cur = tx.get("currency", "CNY")
        esc = html.escape
        store = self.store_name or self.tr("Self-checkout")
        number = self.tr("Receipt no. %1").replace("%1", str(tx["id"]))
        h_item, h_qty = self.tr("Item"), self.tr("Qty")
        h_unit, h_amount = self.tr("Unit price"), self.tr("Amount")
        total = self.tr("Total")
        thanks = self.tr("Thank you for shopping with us!")
        rows = "".join(
            f"<tr><td>{esc(str(line['name']))}</td><td align='right'>{line['qty']}</td>"
            f"<td align='right'>{esc(format_price(line['unit_price'], cur))}</td>"
            f"<td align='right'>{esc(format_price(line['amount'], cur))}</td></tr>"
            for line in tx["lines"])
        return (
            "<div style='font-size:14pt'>"
            f"<h2 align='center'>{esc(store)}</h2>"
            f"<p align='center'>{esc(number)}<br/>{esc(_local_time(tx.get('created_at')))}</p>"
            "<hr/><table width='100%' cellspacing='0' cellpadding='4'>"
            f"<tr><th align='left'>{esc(h_item)}</th><th align='right'>{esc(h_qty)}</th>"
            f"<th align='right'>{esc(h_unit)}</th><th align='right'>{esc(h_amount)}</th></tr>"
            f"{rows}</table><hr/>"
            f"<h2 align='right'>{esc(total)}: {esc(format_price(tx['total'], cur))}</h2>"
            f"<p align='center'>{esc(thanks)}</p></div>")

    def _texts(self) -> dict:
        tx = self.transaction
        return {"store": self.store_name or self.tr("Self-checkout"),
                "number": self.tr("Receipt no. %1").replace("%1", str(tx["id"])),
                "item": self.tr("Item"), "qty": self.tr("Qty"), "unit": self.tr("Unit price"),
                "amount": self.tr("Amount"), "total": self.tr("Total"),
                "thanks": self.tr("Thank you for shopping with us!")}

    def paint(self, painter: QPainter, device, width_px: float | None = None) -> float:
        """Draw the receipt at the top left of ``device`` (``width_px`` wide, default 72 mm);
        returns the height drawn."""
        r = _ReceiptPainter(self._texts(), self.transaction, self.font().family(), device)
        width = width_px if width_px is not None else (PAGE_WIDTH_MM - 2 * MARGIN_MM) * r.mm
        return r.run(painter, 0.0, width)

    def save_pdf(self, path: str | Path) -> Path:
        """The receipt as a one-page PDF, 80 mm wide and as long as the receipt."""
        path = Path(path)
        writer = QPdfWriter(str(path))
        writer.setResolution(300)
        writer.setTitle(self._texts()["number"])
        writer.setCreator("kiosk")
        r = _ReceiptPainter(self._texts(), self.transaction, self.font().family(), writer)
        content_w = (PAGE_WIDTH_MM - 2 * MARGIN_MM) * r.mm
        height_mm = r.run(None, 0.0, content_w) / r.mm + 2 * MARGIN_MM
        writer.setPageLayout(QPageLayout(
            QPageSize(QSizeF(PAGE_WIDTH_MM, max(height_mm, 40.0)), QPageSize.Unit.Millimeter,
                      "receipt", QPageSize.SizeMatchPolicy.ExactMatch),
            QPageLayout.Orientation.Portrait,
            QMarginsF(MARGIN_MM, MARGIN_MM, MARGIN_MM, MARGIN_MM), QPageLayout.Unit.Millimeter))
        painter = QPainter()
        if not painter.begin(writer):
            raise OSError(f"cannot write {path}")
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            r.run(painter, 0.0, content_w)
        finally:
            painter.end()
        if not path.is_file() or path.stat().st_size == 0:
            raise OSError(f"cannot write {path}")
        return path

    def save_to_receipt_dir(self) -> receipt_printer.PrintResult:
        """Kiosk mode's *Save as PDF*: ``receipt-<no.>.pdf`` in the receipt folder, no dialog."""
        number = self.transaction["id"]
        try:
            folder = receipt_printer.receipt_dir(self._printer_settings())
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = self.save_pdf(folder / receipt_printer.receipt_file_name(self.transaction))
        except Exception as exc:  # noqa: BLE001 - told to the shopper, never a crash
            log.warning("receipt %s not saved: %s", number, exc)
            result = receipt_printer.PrintResult(
                False, "save_failed", receipt_printer.message("save_failed", self.language(),
                                                              n=number), str(exc))
            self._show_status("save_failed", n=number)
        else:
            log.info("receipt %s saved as %s", number, path)
            result = receipt_printer.PrintResult(
                True, "saved", receipt_printer.message("saved", self.language(), path=path.name),
                str(path), path)
            self._show_status("saved", path=path.name)
        self.last_result = result
        return result

    def _ask_pdf(self) -> None:
        if self.kiosk_mode():
            self.save_to_receipt_dir()
            return
        self._auto_close.stop()
        name = receipt_printer.receipt_file_name(self.transaction)
        path, _ = QFileDialog.getSaveFileName(self, self.tr("Save receipt as PDF"),
                                              str(Path.home() / name), "PDF (*.pdf)")
        if path:
            try:
                self.save_pdf(path)
            except OSError as exc:
                QMessageBox.warning(self, self.tr("Could not save the PDF"), str(exc))

    def print_receipt(self) -> None:
        if self.kiosk_mode():
            self.print_to_printer()
            return
        from PySide6.QtPrintSupport import QPrintDialog, QPrinter

        self._auto_close.stop()
        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        dlg = QPrintDialog(printer, self)
        if dlg.exec() == QDialog.DialogCode.Accepted:
            painter = QPainter()
            if painter.begin(printer):
                try:
                    page = printer.pageLayout().paintRectPixels(printer.resolution())
                    self.paint(painter, printer,
                               min(page.width(), (PAGE_WIDTH_MM - 2 * MARGIN_MM)
                                   * printer.logicalDpiX() / 25.4))
                finally:
                    painter.end()

    def print_to_printer(self) -> None:
        """Kiosk mode's *Print*: the configured receipt printer, off the GUI thread; with no
        printer configured the receipt is kept as a PDF in the receipt folder."""
        from kiosk.ui.tasks import Task

        if self._print_task is not None:
            return
        settings = self._printer_settings()
        number = self.transaction["id"]
        if getattr(getattr(settings, "printer", None), "kind", "none") == "none":
            saved = self.save_to_receipt_dir()
            self.last_result = receipt_printer.PrintResult(
                False, "no_printer", receipt_printer.message("no_printer", self.language(),
                                                             n=number), saved.detail, saved.path)
            self._show_status("no_printer", n=number)
            return
        self.print_button.setEnabled(False)
        self._show_status("printing")
        task = Task(receipt_printer.print_receipt, self.transaction, settings,
                    self.store_name, self.language())
        task.done.connect(self._printed)
        task.failed.connect(self._print_failed)
        self._print_task = task.start()

    def _printed(self, result: receipt_printer.PrintResult) -> None:
        self._print_task = None
        self.last_result = result
        self.print_button.setEnabled(True)
        if result.ok:
            self._show_status("printed")
        else:
            self._show_status(result.status, n=self.transaction["id"])

    def _print_failed(self, detail: str) -> None:  # print_receipt does not raise; just in case
        self._printed(receipt_printer.PrintResult(
            False, "error", receipt_printer.message("error", self.language(),
                                                    n=self.transaction["id"]), detail))
