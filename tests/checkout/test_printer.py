"""Receipts on paper: the 32/48-column layout, ESC/POS bytes (GB18030, QR code), printer
failures told in plain words, the 80 mm PDF read back with pdftotext, the self-test's receipt
check, and the receipt dialog in kiosk mode (no desktop dialogs)."""
from __future__ import annotations

import shutil
import socket
import unicodedata

import pytest

from kiosk.checkout import printer
from kiosk.money import format_price
from kiosk.settings import Settings, with_changes

SALE = {"id": 12, "created_at": "2024-05-01 02:00:00", "currency": "CNY", "total": 2340,
        "lines": [
            {"sku": "DEMO-001", "name": "可口可乐 330ml", "qty": 2, "unit_price": 350,
             "amount": 700},
            {"sku": "DEMO-002", "name": "农夫山泉 550ml", "qty": 1, "unit_price": 200,
             "amount": 200},
            {"sku": "LONG", "name": "乐事黄瓜味薯片 超大包装 家庭分享装 Family Pack 500g",
             "qty": 1, "unit_price": 1290, "amount": 1290},
            {"sku": "RAD", "name": "长城干红 见风飞贝门", "qty": 1, "unit_price": 150,
             "amount": 150},
        ]}
BIG = {"id": 98765, "created_at": "2024-12-31T23:59:59+08:00", "currency": "CNY",
       "total": 12_000_300,
       "lines": [
           {"sku": "W", "name": "Supercalifragilisticexpialidocious-chocolate-bar", "qty": 1,
            "unit_price": 300, "amount": 300},
           {"sku": "X", "name": "茅台飞天53度500ml礼盒装（收藏版）", "qty": 12,
            "unit_price": 1_000_000, "amount": 12_000_000},
       ]}
NEEDS_PDFTOTEXT = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                     reason="pdftotext missing (Debian poppler-utils)")


def east_asian_columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def printer_settings(**changes) -> Settings:
    return with_changes(Settings(), "printer", **changes)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------ layout
@pytest.mark.parametrize("columns", [32, 48])
@pytest.mark.parametrize("language", ["zh_CN", "en"])
@pytest.mark.parametrize("sale", [SALE, BIG], ids=["sale", "big"])
def test_layout_fits_the_paper_and_holds_every_item(columns, language, sale):
    lines = printer.receipt_lines(sale, columns, "袋鼯麻麻 测试店", language)
    for line in lines:
        assert printer.text_width(line) <= columns, line
        assert east_asian_columns(line) <= columns, line  # CJK counted as 2
        assert not any(unicodedata.category(c) == "Cc" for c in line)
    text = "\n".join(lines)
    assert printer.receipt_text_problems(text, sale) == []
    assert "袋鼯麻麻 测试店" in lines[0]
    assert str(sale["id"]) in lines[1]
    total = printer.clean(format_price(sale["total"]))
    assert any(line.endswith(total) and ("合计" in line or "Total" in line) for line in lines)


def test_layout_table_58mm_chinese():
    lines = printer.receipt_lines(SALE, 32, "袋鼯麻麻", "zh_CN")
    body = lines[lines.index("-" * 32) + 1:]
    assert body[:11] == [
        "商品         数量 x 单价    金额",
        "可口可乐 330ml",  # too long for its column: on a line of its own, numbers below
        "              2 x ￥3.50  ￥7.00",
        "农夫山泉 550ml",
        "              1 x ￥2.00  ￥2.00",
        "乐事黄瓜味薯片 超大包装 家庭分享",
        "装 Family Pack 500g",
        "             1 x ￥12.90 ￥12.90",
        "长城干红 见风飞贝门",
        "              1 x ￥1.50  ￥1.50",
        "-" * 32,
    ]
    assert body[11:13] == ["共 5 件", "合计                     ￥23.40"]


def test_layout_table_80mm_english():
    lines = printer.receipt_lines(SALE, 48, "Shop", "en")
    assert lines[0].strip() == "Shop"
    assert lines[1].startswith("Receipt no. 12") and lines[1].endswith(
        printer.local_time(SALE["created_at"]))
    body = lines[lines.index("-" * 48) + 1:]
    assert body[:7] == [
        "Item                         Qty x Price  Amount",
        "可口可乐 330ml                2 x ￥3.50  ￥7.00",
        "农夫山泉 550ml                1 x ￥2.00  ￥2.00",
        "乐事黄瓜味薯片 超大包装 家庭分享装 Family Pack",
        "500g",
        "                             1 x ￥12.90 ￥12.90",
        "长城干红 见风飞贝门           1 x ￥1.50  ￥1.50",
    ]
    assert body[-1].strip() == "Thank you for shopping with us!"


def test_wrap_never_splits_a_line_wider_than_asked():
    for width in range(2, 20):
        for text in ("乐事黄瓜味薯片 超大包装", "Supercalifragilistic", "a 农 b 夫 cc 山泉",
                     "ＡＢＣ全角字母", "x" * 50):
            parts = printer.wrap(text, width)
            assert all(printer.text_width(p) <= width for p in parts), (text, width, parts)
            assert "".join(parts).replace(" ", "") == text.replace(" ", "")


def test_text_check_finds_what_is_wrong():
    text = "\n".join(printer.receipt_lines(SALE, 48, "", "zh_CN"))
    assert printer.receipt_text_problems(text, SALE) == []
    assert printer.receipt_text_problems(text.replace("￥7.00", "￥7.10"), SALE) == [
        "no line with '可口可乐 330ml' x2 ¥7.00"]
    assert "no total ¥23.40" in printer.receipt_text_problems(
        text.replace("￥23.40", "￥23.00"), SALE)[0]
    swapped = dict(SALE, lines=[SALE["lines"][1], SALE["lines"][0]] + SALE["lines"][2:])
    assert printer.receipt_text_problems(text, swapped)  # the order counts


def test_preview_of_the_58mm_roll():
    img = printer.preview_image(SALE, 32, "袋鼯麻麻", "zh_CN")
    assert img.width == 32 * 12 + 2 * 12 and img.height > 400
    assert img.getextrema() == (0, 255)


# ----------------------------------------------------------------------------- ESC/POS
def test_escpos_to_a_file_decodes_to_the_receipt(tmp_path):
    out = tmp_path / "printer.bin"
    settings = printer_settings(kind="file", target=str(out), width_mm=58)
    result = printer.print_receipt(SALE, settings, "袋鼯麻麻", "zh_CN")
    assert result.ok and result.status == "printed", result
    data = out.read_bytes()
    assert data.startswith(printer.INIT + printer.CHINESE_ON)  # FS &: GB18030 double bytes
    text = data.decode("gb18030")
    for line in printer.receipt_lines(SALE, 32, "袋鼯麻麻", "zh_CN"):
        assert line + "\n" in text, line
        assert line.encode("gb18030") in data
    assert "可口可乐".encode("gb18030") in data and "￥23.40".encode("gb18030") in data
    assert printer.receipt_text_problems(text, SALE) == []
    # the sale number as a native QR code: GS ( k ... store "12", then print it
    store = printer.QR_COMMAND + bytes([len("12") + 3, 0]) + b"1P0" + b"12"
    assert store in data and printer.QR_COMMAND + b"\x03\x001Q0" in data
    assert b"\x1dV" in data[-8:]  # the paper is cut at the end


def test_escpos_bytes_80mm_english():
    data = printer.escpos_bytes(BIG, 48, "Shop", "en")
    text = data.decode("gb18030")
    assert printer.receipt_text_problems(text, BIG) == []
    assert "茅台飞天".encode("gb18030") in data
    assert "￥120003.00".encode("gb18030") in data


def test_an_offline_network_printer_is_a_plain_failure():
    settings = printer_settings(kind="network", target=f"127.0.0.1:{free_port()}")
    result = printer.print_receipt(SALE, settings, "袋鼯麻麻", "en")
    assert not result.ok and result.status == "offline"
    assert result.message.startswith("The printer is offline")
    assert "receipt no. 12" in result.message  # the sale is kept, and the shopper is told
    assert "127.0.0.1" in result.detail
    zh = printer.print_receipt(SALE, settings, "袋鼯麻麻", "zh_CN")
    assert zh.message.startswith("打印机未连接") and "12" in zh.message


def test_an_unwritable_printer_file_is_a_plain_failure(tmp_path):
    settings = printer_settings(kind="file", target=str(tmp_path / "no-such-dir" / "lp0"))
    result = printer.print_receipt(SALE, settings, "", "en")
    assert not result.ok and result.status == "offline" and "offline" in result.message


@pytest.mark.parametrize("changes, status", [
    ({}, "no_printer"),
    ({"kind": "usb", "target": "not-hex"}, "error"),
    ({"kind": "file"}, "error"),  # no target
])
def test_printer_settings_problems_do_not_raise(changes, status):
    result = printer.print_receipt(SALE, printer_settings(**changes), "", "en")
    assert not result.ok and result.status == status and result.message


class _FakePrinter:
    """A printer backend that answers status queries and may fail while printing."""

    def __init__(self, status: bytes = b"\x12", fail: bool = False) -> None:
        from escpos.printer import Dummy

        class Fake(Dummy):
            def _read(inner) -> bytes:
                return status

            def _raw(inner, msg: bytes) -> None:
                if fail and len(msg) > 100:
                    raise OSError("device disconnected")
                super()._raw(msg)

        self.printer = Fake()


@pytest.mark.parametrize("status, fail, expect", [
    (b"\x12", False, "printed"),
    (b"\x72", False, "no_paper"),  # paper-end sensor
    (b"\x1a", False, "offline"),  # bit 3: offline
    (b"", False, "printed"),  # no answer: printed anyway
    (b"\x12", True, "error"),
])
def test_printer_status_and_errors(status, fail, expect):
    fake = _FakePrinter(status, fail).printer
    result = printer.print_receipt(SALE, printer_settings(kind="file", target="/dev/null"),
                                   "", "en", printer=fake)
    assert result.status == expect, result
    assert result.ok == (expect == "printed")
    if expect == "no_paper":
        assert "out of paper" in result.message
    if expect == "printed":
        assert "可口可乐".encode("gb18030") in fake.output


# ---------------------------------------------------------------------------------- PDF
@pytest.fixture
def receipt_app(qapp):
    from kiosk.ui import i18n
    from kiosk.ui.app import setup_application

    app = setup_application()
    yield app
    i18n.set_language(app, "zh_CN")


@NEEDS_PDFTOTEXT
@pytest.mark.parametrize("language", ["zh_CN", "en"])
def test_pdf_text_equals_the_sale(receipt_app, qtbot, tmp_path, language):
    from kiosk.ui import i18n
    from kiosk.ui.receipt_dialog import ReceiptDialog, pdf_text

    i18n.set_language(receipt_app, language)
    for sale in (SALE, BIG):
        dlg = ReceiptDialog(sale, "袋鼯麻麻 测试店")
        qtbot.addWidget(dlg)
        pdf = dlg.save_pdf(tmp_path / f"{language}-{sale['id']}.pdf")
        text = pdf_text(pdf)
        assert printer.receipt_text_problems(text, sale) == [], text
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        assert lines[0] == "袋鼯麻麻 测试店"
        n = sale["id"]
        assert lines[1] == (f"小票号：{n}" if language == "zh_CN" else f"Receipt no. {n}")
        # one item per line: name, quantity, unit price and amount on the same line
        for line in sale["lines"]:
            unit, amount = format_price(line["unit_price"]), format_price(line["amount"])
            rows = [ln for ln in lines if ln.startswith(line["name"][:4])]
            assert len(rows) == 1, (line["name"], lines)
            cells = rows[0].split()
            assert cells[-3:] == [str(line["qty"]), unit, amount], rows[0]
        total = format_price(sale["total"])
        assert any(ln.startswith("合计" if language == "zh_CN" else "Total")
                   and ln.endswith(total) for ln in lines)


@NEEDS_PDFTOTEXT
def test_pdf_is_one_80mm_page(receipt_app, qtbot, tmp_path):
    import subprocess

    from kiosk.ui.receipt_dialog import ReceiptDialog

    many = dict(SALE, lines=SALE["lines"] * 10, total=SALE["total"] * 10)
    dlg = ReceiptDialog(many, "袋鼯麻麻")
    qtbot.addWidget(dlg)
    pdf = dlg.save_pdf(tmp_path / "long.pdf")
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
    assert "Pages:           1" in info
    width_pt = float(info.split("Page size:")[1].split()[0])
    assert abs(width_pt - 80 / 25.4 * 72) < 1.5


def test_self_test_checks_the_printed_receipt(receipt_app, qtbot, tmp_path, monkeypatch):
    from kiosk.tools import selftest
    from kiosk.ui.receipt_dialog import ReceiptDialog
    from kiosk.ui.selftest import WindowChecks

    dlg = ReceiptDialog(SALE, "self-test")
    qtbot.addWidget(dlg)
    check = selftest.SelfTest(window=WindowChecks())
    check._receipt_tx, check._receipt_pdf = SALE, dlg.save_pdf(tmp_path / "r.pdf")
    if shutil.which("pdftotext"):
        detail = check.check_receipt()
        assert "PDF text matches the sale" in detail and "ESC/POS 32/48" in detail
        # a PDF that is not this sale's receipt fails the check
        other = dict(SALE, lines=SALE["lines"][:1], total=700)
        odd = ReceiptDialog(other, "self-test")
        qtbot.addWidget(odd)
        check._receipt_pdf = odd.save_pdf(tmp_path / "other.pdf")
        with pytest.raises(selftest.CheckFailed, match="PDF: no line with"):
            check.check_receipt()
    monkeypatch.setattr(shutil, "which", lambda name: None)  # no pdftotext: said, not passed
    with pytest.raises(selftest.CheckWarning, match="skipped: pdftotext missing"):
        check.check_receipt()
    shutil.rmtree(check.tmp, ignore_errors=True)


# ------------------------------------------------------------------ kiosk-mode dialog
@pytest.fixture
def kiosk_window(receipt_app, qtbot, tmp_path, copy_demo_db, embedder):
    """The real kiosk window, locked down (kiosk mode), on a private demo catalogue."""
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    from kiosk.camera.demo import DemoCamera
    from kiosk.engine import Engine
    from kiosk.checkout.session import CheckoutSession
    from kiosk.ui.app import KioskParts, build_window

    made = []

    def make(settings):
        db = copy_demo_db(tmp_path / "store")
        camera = DemoCamera(fps=30, seed=3, script=[("wait", 60)])
        engine = Engine.open(db, embedder=embedder, background=camera.background())
        window = build_window(KioskParts(engine, CheckoutSession(engine, settle_ms=150),
                                         camera, "demo", db), settings)
        qtbot.addWidget(window)
        window.lock_down()
        window.resize(1280, 800)
        window.show()
        made.append((window, engine))
        return window, engine

    yield make
    for window, engine in made:
        window.controller.shutdown()
        window._allow_close = True
        window.close()
        window.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    for _window, engine in made:
        engine.close()


def _no_desktop_dialogs(monkeypatch) -> list:
    from PySide6.QtPrintSupport import QPrintDialog
    from PySide6.QtWidgets import QFileDialog

    opened = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: opened.append("QFileDialog") or ("", ""))
    monkeypatch.setattr(QPrintDialog, "exec", lambda *a, **k: opened.append("QPrintDialog") or 0)
    return opened


def _desktop_dialogs_on_screen() -> list[str]:
    from PySide6.QtPrintSupport import QPrintDialog
    from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

    widgets = QApplication.topLevelWidgets()
    modal = QApplication.activeModalWidget()
    return [type(w).__name__ for w in widgets + ([modal] if modal else [])
            if isinstance(w, (QFileDialog, QPrintDialog, QMessageBox)) and w.isVisible()]


def _sale_dialog(window, engine):
    """A recorded sale's receipt dialog, opened on the window as Finish opens it."""
    from kiosk.ui.receipt_dialog import ReceiptDialog

    cat = engine.catalog
    tx = cat.record_transaction({"currency": "CNY", "total": 550, "lines": [
        {"sku": "DEMO-001", "name": "可口可乐 330ml", "qty": 1, "unit_price": 350, "amount": 350},
        {"sku": "DEMO-002", "name": "农夫山泉 550ml", "qty": 1, "unit_price": 200, "amount": 200},
    ]})
    record = cat.get_transaction(tx)
    dlg = ReceiptDialog(record, window.store_name, window)
    dlg.open()
    return dlg, record


def test_kiosk_mode_print_and_save_open_no_desktop_dialog(kiosk_window, qtbot, tmp_path,
                                                          monkeypatch):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    receipts, roll = tmp_path / "receipts", tmp_path / "roll.bin"
    settings = with_changes(printer_settings(kind="file", target=str(roll),
                                             receipt_dir=str(receipts), width_mm=58),
                            "store", name="袋鼯麻麻 测试店")
    window, engine = kiosk_window(settings)
    assert window.locked
    opened = _no_desktop_dialogs(monkeypatch)
    dlg, record = _sale_dialog(window, engine)
    assert dlg.kiosk_mode()

    QTest.mouseClick(dlg.print_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.last_result is not None, timeout=10_000)
    assert dlg.last_result.ok, dlg.last_result
    assert dlg.status_label.isVisible() and "小票已打印" in dlg.status_label.text()
    assert "可口可乐".encode("gb18030") in roll.read_bytes()

    QTest.mouseClick(dlg.pdf_button, Qt.MouseButton.LeftButton)
    pdf = receipts / f"receipt-{record['id']}.pdf"
    assert pdf.is_file() and pdf.read_bytes()[:5] == b"%PDF-"
    assert dlg.last_result.status == "saved" and pdf.name in dlg.status_label.text()
    assert opened == [] and _desktop_dialogs_on_screen() == []
    dlg.close_button.click()


def test_kiosk_mode_offline_printer_is_told_in_the_dialog(kiosk_window, qtbot, tmp_path,
                                                          monkeypatch):
    from PySide6.QtWidgets import QApplication

    from kiosk.ui import i18n

    settings = printer_settings(kind="network", target=f"127.0.0.1:{free_port()}",
                                receipt_dir=str(tmp_path / "r"))
    window, engine = kiosk_window(settings)
    opened = _no_desktop_dialogs(monkeypatch)
    dlg, record = _sale_dialog(window, engine)
    dlg.print_button.click()
    qtbot.waitUntil(lambda: dlg.last_result is not None, timeout=10_000)
    assert dlg.last_result.status == "offline"
    assert "打印机未连接" in dlg.status_label.text() and str(record["id"]) in dlg.status_label.text()
    assert engine.catalog.get_transaction(record["id"]) is not None  # the sale stays stored
    i18n.set_language(QApplication.instance(), "en")  # the message follows the language
    assert dlg.status_label.text().startswith("The printer is offline")
    assert opened == [] and _desktop_dialogs_on_screen() == []
    dlg.close_button.click()


def test_kiosk_mode_without_a_printer_keeps_the_pdf(kiosk_window, qtbot, tmp_path, monkeypatch):
    settings = printer_settings(receipt_dir=str(tmp_path / "kept"))
    window, engine = kiosk_window(settings)
    opened = _no_desktop_dialogs(monkeypatch)
    dlg, record = _sale_dialog(window, engine)
    dlg.print_button.click()
    assert dlg.last_result.status == "no_printer"
    assert (tmp_path / "kept" / f"receipt-{record['id']}.pdf").is_file()
    assert opened == [] and _desktop_dialogs_on_screen() == []
    dlg.close_button.click()


def test_qt_dialogs_follow_the_ui_language(receipt_app):
    from PySide6.QtCore import QCoreApplication

    from kiosk.ui import i18n

    assert i18n.qt_qm_path("zh_CN").is_file()  # shipped in the PySide6-Essentials wheel
    i18n.set_language(receipt_app, "zh_CN")
    assert QCoreApplication.translate("QPlatformTheme", "Cancel") == "取消"
    assert QCoreApplication.translate("QPrintDialog", "Print") == "打印"
    assert QCoreApplication.translate("QFileDialog", "Save As") == "另存为"
    i18n.set_language(receipt_app, "en")
    assert QCoreApplication.translate("QPlatformTheme", "Cancel") == "Cancel"
