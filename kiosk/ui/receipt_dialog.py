"""The final receipt after a sale: shown, printed, or saved as PDF."""
from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

from PySide6.QtCore import QEvent, QMarginsF, QSizeF, QTimer
from PySide6.QtGui import QPageLayout, QPageSize, QTextDocument
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QMessageBox,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
)

from kiosk.money import format_price

AUTO_CLOSE_MS = 90_000


def _local_time(created_at: str | None) -> str:
    if not created_at:
        return datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    try:
        t = datetime.fromisoformat(created_at)
    except ValueError:
        return created_at
    if t.tzinfo is None:  # SQLite CURRENT_TIMESTAMP-style: UTC
        t = t.replace(tzinfo=UTC)
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S")


class ReceiptDialog(QDialog):
    def __init__(self, transaction: dict, store_name: str = "", parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("ReceiptDialog")
        self.transaction = transaction
        self.store_name = store_name
        self.resize(560, 760)
        self.view = QTextBrowser()
        self.print_button = QPushButton()
        self.print_button.clicked.connect(self.print_receipt)
        self.pdf_button = QPushButton()
        self.pdf_button.clicked.connect(self._ask_pdf)
        self.close_button = QPushButton(objectName="PrimaryButton")
        self.close_button.clicked.connect(self.accept)
        lay = QVBoxLayout(self)
        lay.addWidget(self.view, 1)
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

    def document(self) -> QTextDocument:
        doc = QTextDocument()
        doc.setDefaultFont(self.font())
        doc.setHtml(self.html())
        return doc

    def save_pdf(self, path: str | Path) -> Path:
        from PySide6.QtPrintSupport import QPrinter

        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
        printer.setOutputFileName(str(path))
        printer.setPageSize(QPageSize(QSizeF(80, 200), QPageSize.Unit.Millimeter, "receipt"))
        printer.setPageMargins(QMarginsF(4, 4, 4, 4), QPageLayout.Unit.Millimeter)
        self.document().print_(printer)
        return Path(path)

    def _ask_pdf(self) -> None:
        self._auto_close.stop()
        name = f"receipt-{self.transaction['id']}.pdf"
        path, _ = QFileDialog.getSaveFileName(self, self.tr("Save receipt as PDF"),
                                              str(Path.home() / name), "PDF (*.pdf)")
        if path:
            try:
                self.save_pdf(path)
            except OSError as exc:
                QMessageBox.warning(self, self.tr("Could not save the PDF"), str(exc))

    def print_receipt(self) -> None:
        from PySide6.QtPrintSupport import QPrintDialog, QPrinter

        self._auto_close.stop()
        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        dlg = QPrintDialog(printer, self)
        if dlg.exec() == QDialog.DialogCode.Accepted:
            self.document().print_(printer)
