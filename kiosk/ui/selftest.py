"""The window's part of ``kiosk --self-test``: Qt offscreen, the CJK font, the Chinese
translation, the image format plugins and a receipt rendered to PDF (and read back).

The self-test itself (:mod:`kiosk.tools.selftest`) never imports Qt: the program entry
(:mod:`kiosk.__main__`) gives it :class:`WindowChecks`.
"""
from __future__ import annotations

import os
from pathlib import Path


class WindowChecks:
    """``check`` and ``pdf_text`` as :class:`kiosk.tools.selftest.SelfTest` calls them."""

    def check(self, settings, transaction: dict | None, pdf_path: Path) -> str:
        """Check Qt and print ``transaction`` (a stored sale; None: no demo tray was recognised)
        to ``pdf_path``.  The report line; a problem is a ``ValueError``."""
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from PySide6.QtGui import QImageReader

        from kiosk.ui import i18n
        from kiosk.ui.app import setup_application
        from kiosk.ui.receipt_dialog import ReceiptDialog

        app = setup_application(["kiosk"], settings)
        try:
            platform_name = app.platformName()
            family = app.font().family()
            if "CJK" not in family and "Noto Sans" not in family:
                raise ValueError(f"the CJK font did not load (application font: {family})")
            if not i18n.set_language(app, "zh_CN"):
                raise ValueError("the Chinese translation did not load")
            formats = {bytes(f).decode() for f in QImageReader.supportedImageFormats()}
            lacking = {"png", "jpg", "jpeg"} - formats
            if lacking:
                raise ValueError(f"Qt image format plugins missing: {sorted(lacking)}")
            if transaction is None:
                raise ValueError("skipped the receipt: no demo tray was recognised")
            pdf = ReceiptDialog(transaction, store_name="self-test").save_pdf(Path(pdf_path))
            size = pdf.stat().st_size if pdf.exists() else 0
            if size < 500:
                raise ValueError(f"the receipt PDF was not written ({size} bytes)")
            return (f"platform {platform_name}, font {family}, zh_CN translation, "
                    f"{len(formats)} image formats, receipt PDF {size // 1024} kB")
        finally:
            i18n.set_language(app, "en")

    @staticmethod
    def pdf_text(path: str | Path) -> str | None:
        """The receipt PDF's text (:func:`kiosk.ui.receipt_dialog.pdf_text`); None without
        pdftotext."""
        from kiosk.ui.receipt_dialog import pdf_text

        return pdf_text(path)
