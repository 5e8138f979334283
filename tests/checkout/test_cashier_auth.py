"""Cashier accounts: codes (one kiosk-wide scrypt salt), badges, lockout with back-off
(injected clock, kept across restarts), audit rows, the ``kiosk cashier`` command, the on-screen
code keypad and staff mode's cashiers tab.  Real SQLite, real widgets."""
from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.checkout.cashier_auth import (
    Cashier,
    CashierAuth,
    CodeFormatError,
    UnknownCashierError,
    check_code,
)
from kiosk.catalog import Catalog
from kiosk.cli import main as cli_main

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path):
    return tmp_path / "catalog.db"


@pytest.fixture
def store(db):
    with Catalog(db) as cat:
        yield cat


def cashier_rows(cat) -> list[tuple]:
    return cat._rows("SELECT id, name, code_hash, badge_hash, active FROM cashiers ORDER BY id")


# ------------------------------------------------------------------------------ code format
@pytest.mark.parametrize("code,ok", [
    ("0000", True), ("1234", True), ("12345678", True), ("007007", True),
    ("123", False), ("123456789", False), ("12a4", False), ("", False), (" 1234", False),
    ("1234 ", False), ("１２３４", False), ("12.4", False), ("-123", False), ("١٢٣٤", False),
    (None, False), (1234, False), (b"1234", False),
])
def test_code_format(code, ok):
    if ok:
        assert check_code(code) == code
    else:
        with pytest.raises(CodeFormatError) as err:
            check_code(code)
        assert "4 to 8 digits" in str(err.value)
        assert isinstance(err.value, ValueError)


# ------------------------------------------------------------------------------ accounts
def test_add_list_get_disable_enable(store):
    auth = CashierAuth(store)
    assert auth.list() == [] and auth.get("C001") is None
    c = auth.add("C001", "王芳", "1234", badge="CARD-0001")
    assert c == Cashier("C001", "王芳", True, True)
    auth.add(" C002 ", " 李明 ", "5678")  # surrounding spaces dropped
    assert auth.list() == [Cashier("C001", "王芳", True, True),
                           Cashier("C002", "李明", True, False)]
    assert auth.set_active("C001", False) is True
    assert auth.set_active("C001", False) is False  # already: nothing changes, nothing audited
    assert auth.get("C001").active is False
    assert auth.set_active("C001", True, role="cli") is True
    assert auth.get("C001").active is True
    with pytest.raises(UnknownCashierError):
        auth.set_active("C404", False)
    actions = [(r["action"], r["role"], r["subject"]) for r in store.audit_log()]
    assert actions[:4] == [("cashier_enabled", "cli", "C001"), ("cashier_disabled", "staff", "C001"),
                           ("cashier_added", "staff", "C002"), ("cashier_added", "staff", "C001")]


@pytest.mark.parametrize("args,message", [
    (("C001", "Other", "9999"), "already exists"),            # duplicate id
    (("C009", "Other", "1234"), "already used by another cashier"),  # code of C001
    (("C009", "Other", "9999", "CARD-0001"), "badge is already used"),
    (("C 9", "Other", "9999"), "cashier id"),
    (("", "Other", "9999"), "cashier id"),
    (("C009", "  ", "9999"), "name"),
    (("C009", "Other", "99"), "4 to 8 digits"),
    (("C009", "Other", "9999", "abc"), "badge must be"),     # too short to be a badge
    (("C009", "Other", "9999", "CARD\n0002"), "control characters"),
])
def test_bad_or_duplicate_add_writes_nothing(store, args, message):
    auth = CashierAuth(store)
    auth.add("C001", "王芳", "1234", badge="CARD-0001")
    rows, audit, state = cashier_rows(store), store.audit_log(), store.get_cashier_auth()
    with pytest.raises(ValueError, match=message):
        auth.add(*args)
    assert cashier_rows(store) == rows
    assert store.audit_log() == audit
    assert store.get_cashier_auth() == state


def test_first_add_refused_leaves_no_salt(store):
    auth = CashierAuth(store)
    with pytest.raises(ValueError):
        auth.add("C001", "王芳", "1234", badge="x")
    assert store.get_cashier_auth() is None and store.audit_log() == []


def test_set_code_and_badge(store):
    auth = CashierAuth(store)
    auth.add("C001", "王芳", "1234")
    auth.add("C002", "李明", "5678", badge="CARD-0002")
    with pytest.raises(ValueError, match="already used"):
        auth.set_code("C001", "5678")
    with pytest.raises(CodeFormatError):
        auth.set_code("C001", "12")
    with pytest.raises(UnknownCashierError):
        auth.set_code("C404", "4444")
    auth.set_code("C001", "1234")  # its own code again: allowed
    auth.set_code("C001", "4321", role="cli")
    assert auth.verify_code("1234", now=0) is None
    assert auth.verify_code("4321", now=0).id == "C001"
    with pytest.raises(ValueError, match="badge is already used"):
        auth.set_badge("C001", "CARD-0002")
    auth.set_badge("C001", "CARD-0001")
    assert auth.verify_badge("CARD-0001").id == "C001"
    auth.set_badge("C001", None)
    assert auth.verify_badge("CARD-0001") is None and not auth.get("C001").has_badge
    rows = store.audit_log(action="cashier_badge_set")
    assert [r["after"] for r in rows] == [{"badge": False}, {"badge": True}]
    assert store.audit_log(action="cashier_code_set")[0]["role"] == "cli"


# ------------------------------------------------------------------------------ codes
def test_verify_code_right_wrong_inactive(store):
    auth = CashierAuth(store)
    assert auth.verify_code("1234", now=0) is None  # no cashier yet: nothing counted
    assert auth.failures() == 0
    auth.add("C001", "王芳", "1234")
    auth.add("C002", "李明", "5678")
    assert auth.verify_code("1234", now=0) == Cashier("C001", "王芳", True, False)
    assert auth.verify_code("5678", now=0).id == "C002"
    assert auth.verify_code("9999", now=0) is None
    assert auth.verify_code("12x4", now=0) is None  # malformed: a wrong code
    assert auth.verify_code(None, now=0) is None  # type: ignore[arg-type]
    assert auth.failures() == 3
    assert auth.verify_code("1234", now=0).id == "C001"
    assert auth.failures() == 0  # a right code clears the count
    auth.set_active("C002", False)
    assert auth.verify_code("5678", now=0) is None  # disabled: refused, counted
    assert auth.failures() == 1


def test_one_salt_per_kiosk_and_no_code_in_clear(db):
    code = "73194628"
    with Catalog(db) as cat:
        auth = CashierAuth(cat)
        auth.add("C001", "王芳", code, badge="BADGE-SECRET-42")
        auth.add("C002", "李明", "5678")
        row = cat.get_cashier_auth()
        assert len(row["salt"]) == 16 and '"n": 16384' in row["params"]
        hashes = [r[2] for r in cashier_rows(cat)]
        assert len(set(hashes)) == 2 and all(len(h) == 32 for h in hashes)
    data = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.is_file())
    for secret in (code, "BADGE-SECRET-42"):
        assert secret.encode() not in data
        assert secret.encode("utf-16-le") not in data


def test_lockout_and_backoff(store):
    auth = CashierAuth(store, max_attempts=3, lockout_s=30)
    auth.add("C001", "王芳", "4321")
    t = 1000.0
    for _ in range(3):
        assert auth.verify_code("0000", now=t) is None
    assert auth.locked_until(now=t) == t + 30
    # while locked even the right code is refused, and attempts neither count nor extend it
    assert auth.verify_code("4321", now=t + 29) is None
    assert auth.locked_until(now=t + 29) == t + 30 and auth.failures() == 0
    assert auth.locked_until(now=t + 30) is None
    t2 = t + 31
    for _ in range(3):
        assert auth.verify_code("0000", now=t2) is None
    assert auth.locked_until(now=t2) == t2 + 60  # second lockout: twice as long
    t3 = t2 + 61
    for _ in range(3):
        assert auth.verify_code("0000", now=t3) is None
    assert auth.locked_until(now=t3) == t3 + 120
    # badges are tokens: not locked out with the codes
    assert auth.verify_badge("no-such-badge") is None
    # a right code after the lockout resets the back-off
    assert auth.verify_code("4321", now=t3 + 121).id == "C001"
    for _ in range(3):
        auth.verify_code("0000", now=t3 + 200)
    assert auth.locked_until(now=t3 + 200) == t3 + 230
    rows = store.audit_log(action="cashier_code_lockout")
    assert [r["after"] for r in rows] == [{"lockouts": 1, "locked_for_s": 30},
                                          {"lockouts": 3, "locked_for_s": 120},
                                          {"lockouts": 2, "locked_for_s": 60},
                                          {"lockouts": 1, "locked_for_s": 30}]
    assert {r["role"] for r in rows} == {"system"}


def test_lockout_survives_restart_and_clock_is_injectable(db):
    now = [100.0]
    with Catalog(db) as cat:
        auth = CashierAuth(cat, max_attempts=2, lockout_s=50, clock=lambda: now[0])
        auth.add("C001", "王芳", "13579")
        assert auth.verify_code("00000") is None
    with Catalog(db) as cat:  # restart: the one failure is remembered
        auth = CashierAuth(cat, max_attempts=2, lockout_s=50, clock=lambda: now[0])
        assert auth.failures() == 1
        now[0] = 101
        assert auth.verify_code("00000") is None
        assert auth.locked_until() == 151
    with Catalog(db) as cat:
        auth = CashierAuth(cat, max_attempts=2, lockout_s=50, clock=lambda: now[0])
        now[0] = 120
        assert auth.locked_until() == 151
        assert auth.verify_code("13579") is None
        now[0] = 152
        assert auth.verify_code("13579").id == "C001"


def test_verify_badge(store):
    auth = CashierAuth(store)
    auth.add("C001", "王芳", "1234", badge="KIOSK-CASHIER-7f3a")
    assert auth.verify_badge("KIOSK-CASHIER-7f3a").id == "C001"
    assert auth.verify_badge("KIOSK-CASHIER-7f3a\n").id == "C001"  # a scanner's line end
    for text in ("KIOSK-CASHIER-7f3b", "", "   ", None, 42):
        assert auth.verify_badge(text) is None  # type: ignore[arg-type]
    auth.set_active("C001", False)
    assert auth.verify_badge("KIOSK-CASHIER-7f3a") is None
    assert auth.failures() == 0


def test_audit_rows_carry_role_and_never_the_code(store):
    auth = CashierAuth(store, max_attempts=1)
    auth.add("C001", "王芳", "86420", badge="CARD-SECRET-1", role="cli")
    auth.set_code("C001", "97531")
    auth.verify_code("11111", now=0)
    store.log_action("remove", {"x": 1}, "DEMO-001", None, role="cashier", actor="C001")
    rows = store.audit_log()
    added = store.audit_log(action="cashier_added")[0]
    assert (added["role"], added["subject"], added["after"]) == (
        "cli", "C001", {"id": "C001", "name": "王芳", "badge": True})
    assert rows[0]["action"] == "remove" and rows[0]["actor"] == "C001"
    text = json.dumps(rows, ensure_ascii=False, default=str)
    for secret in ("86420", "97531", "11111", "CARD-SECRET-1"):
        assert secret not in text


# ------------------------------------------------------------------------------ command line
def run_cli(capsys, monkeypatch, *argv, stdin: str | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capsys.readouterr()
    rc = cli_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_add_list_disable_enable(capsys, monkeypatch, db):
    rc, out, err = run_cli(capsys, monkeypatch, "cashier", "add", "--db", db, "--id", "C001",
                           "--name", "王芳", "--badge", "CARD-0001", "--code-stdin",
                           stdin="2468\n")
    assert rc == 0 and "C001" in out, err
    rc, out, _ = run_cli(capsys, monkeypatch, "cashier", "add", "--db", db, "--id", "C002",
                         "--name", "李明", "--code-stdin", stdin="1357\n")
    assert rc == 0
    rc, out, _ = run_cli(capsys, monkeypatch, "cashier", "list", "--db", db, "--json")
    assert rc == 0
    assert [json.loads(line) for line in out.splitlines()] == [
        {"id": "C001", "name": "王芳", "active": True, "badge": True},
        {"id": "C002", "name": "李明", "active": True, "badge": False}]
    assert run_cli(capsys, monkeypatch, "cashier", "disable", "--db", db, "C002")[0] == 0
    rc, out, _ = run_cli(capsys, monkeypatch, "cashier", "list", "--db", db)
    assert rc == 0 and "disabled" in out.splitlines()[1] and "2468" not in out
    assert run_cli(capsys, monkeypatch, "cashier", "enable", "--db", db, "C002")[0] == 0
    with Catalog(db) as cat:
        auth = CashierAuth(cat)
        assert auth.verify_code("2468", now=0).id == "C001"
        assert auth.verify_code("1357", now=0).id == "C002"
        assert auth.verify_badge("CARD-0001").id == "C001"
        rows = cat.audit_log()
        assert [(r["action"], r["role"]) for r in rows] == [
            ("cashier_enabled", "cli"), ("cashier_disabled", "cli"),
            ("cashier_added", "cli"), ("cashier_added", "cli")]


@pytest.mark.parametrize("argv,stdin,message", [
    (["--id", "C001", "--name", "Dup"], "9999\n", "already exists"),
    (["--id", "C003", "--name", "Dup code"], "2468\n", "already used"),
    (["--id", "C003", "--name", "Dup badge", "--badge", "CARD-0001"], "9999\n", "badge"),
    (["--id", "C003", "--name", "Bad"], "12\n", "4 to 8 digits"),
    (["--id", "C003", "--name", "Bad"], "", "4 to 8 digits"),
    (["--id", "C 3", "--name", "Bad"], "9999\n", "cashier id"),
    (["--id", "C003", "--name", " "], "9999\n", "name"),
])
def test_cli_bad_input_exits_2_and_writes_nothing(capsys, monkeypatch, db, argv, stdin, message):
    with Catalog(db) as cat:
        CashierAuth(cat).add("C001", "王芳", "2468", badge="CARD-0001")
        before = (cashier_rows(cat), cat.audit_log())
    rc, out, err = run_cli(capsys, monkeypatch, "cashier", "add", "--db", db, *argv,
                           "--code-stdin", stdin=stdin)
    assert rc == 2 and message in err and "nothing changed" in err and out == ""
    with Catalog(db) as cat:
        assert (cashier_rows(cat), cat.audit_log()) == before


def test_cli_unknown_cashier(capsys, monkeypatch, db):
    from kiosk.catalog import Catalog

    Catalog(db).close()  # the catalogue exists; the cashier does not
    rc, _, err = run_cli(capsys, monkeypatch, "cashier", "disable", "--db", db, "C404")
    assert rc == 2 and "C404" in err


def test_cli_cashier_list_on_a_mistyped_db_creates_nothing(capsys, monkeypatch, tmp_path):
    typo = tmp_path / "catalgo.db"
    rc, _, err = run_cli(capsys, monkeypatch, "cashier", "list", "--db", str(typo))
    assert rc == 2 and "no such catalogue" in err and not typo.exists()


def test_cli_subprocess(tmp_path):
    db = tmp_path / "catalog.db"
    env = {**os.environ, "KIOSK_DATA_DIR": str(tmp_path / "data")}
    env.pop("KIOSK_DB", None)
    add = subprocess.run([sys.executable, "-m", "kiosk.cli", "cashier", "add", "--db", str(db),
                          "--id", "C007", "--name", "张伟", "--code-stdin"], input="80808\n",
                         cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120)
    assert add.returncode == 0, add.stderr
    listed = subprocess.run([sys.executable, "-m", "kiosk.cli", "cashier", "list", "--db",
                             str(db), "--json"], cwd=PROJECT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert json.loads(listed.stdout) == {"id": "C007", "name": "张伟", "active": True,
                                         "badge": False}


# ------------------------------------------------------------------------------ widgets
needs_qt = pytest.mark.skipif(importlib.util.find_spec("pytestqt") is None,
                              reason="pytest-qt not installed")


def click(widget):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    assert widget.isVisible() and widget.isEnabled()
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


@needs_qt
def test_code_dialog_keypad(qtbot, qapp, store):
    from kiosk.ui import i18n
    from kiosk.ui.cashier_pad import BACKSPACE, CashierCodeDialog

    i18n.set_language(qapp, "en")  # (earlier tests may have left the UI in Chinese)

    now = [1000.0]
    auth = CashierAuth(store, max_attempts=2, lockout_s=30, clock=lambda: now[0])
    auth.add("C001", "王芳", "2580")
    dlg = CashierCodeDialog(auth)
    qtbot.addWidget(dlg)
    dlg.show()
    assert dlg.isModal()
    assert set(dlg.keys) == {*"0123456789", BACKSPACE, "OK"}
    assert all(b.minimumHeight() >= 60 and b.minimumWidth() >= 60 for b in dlg.keys.values())
    # a wrong code: said in words, the dialog stays open, the field is cleared
    for key in "2581":
        click(dlg.keys[key])
    assert dlg.field.text() == "2581" and dlg.field.displayText() != "2581"  # masked
    with qtbot.assertNotEmitted(dlg.cashierAccepted):
        click(dlg.keys["OK"])
    assert dlg.isVisible() and dlg.field.text() == ""
    assert "Wrong code" in dlg.message.text()
    # backspace, then the right code: the signal carries the cashier, the dialog accepts
    for key in "25899":
        click(dlg.keys[key])
    click(dlg.keys[BACKSPACE])
    click(dlg.keys[BACKSPACE])
    click(dlg.keys["0"])
    with qtbot.waitSignal(dlg.cashierAccepted, timeout=5000) as sig:
        click(dlg.keys["OK"])
    assert sig.args == [Cashier("C001", "王芳", True, False)]
    assert dlg.result() == dlg.DialogCode.Accepted and dlg.cashier.id == "C001"


@needs_qt
def test_code_dialog_hardware_keyboard_and_lockout(qtbot, qapp, store):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from kiosk.ui import i18n

    i18n.set_language(qapp, "en")  # (earlier tests may have left the UI in Chinese)

    from kiosk.ui.cashier_pad import CashierCodeDialog

    now = [1000.0]
    auth = CashierAuth(store, max_attempts=2, lockout_s=30, clock=lambda: now[0])
    auth.add("C001", "王芳", "2580")
    dlg = CashierCodeDialog(auth)
    qtbot.addWidget(dlg)
    dlg.show()
    QTest.keyClicks(dlg.field, "12ab34")  # letters are not taken
    assert dlg.field.text() == "1234"
    QTest.keyClick(dlg.field, Qt.Key.Key_Return)
    assert dlg.isVisible() and "Wrong code" in dlg.message.text()
    dlg.enter("0000")  # second wrong code: locked
    assert dlg.isVisible() and "locked for 30 s" in dlg.message.text()
    assert not dlg.keys["5"].isEnabled()
    now[0] += 31
    dlg._refresh_lock()
    assert dlg.keys["5"].isEnabled() and dlg.message.text() == ""
    with qtbot.waitSignal(dlg.cashierAccepted, timeout=5000):
        QTest.keyClicks(dlg.field, "2580")
        QTest.keyClick(dlg.field, Qt.Key.Key_Enter)


@needs_qt
def test_code_dialog_in_chinese(qtbot, qapp, store):
    from kiosk.ui import i18n
    from kiosk.ui.cashier_pad import CashierCodeDialog

    auth = CashierAuth(store)
    auth.add("C001", "王芳", "2580")
    dlg = CashierCodeDialog(auth)
    qtbot.addWidget(dlg)
    try:
        assert i18n.set_language(qapp, "zh_CN")
        dlg.enter("1111")
        assert dlg.message.text() == "密码错误，请重试。"
        assert dlg.keys["OK"].text() == "确定"
    finally:
        i18n.set_language(qapp, "en")
    assert dlg.message.text() == "Wrong code, try again."


@needs_qt
def test_cashiers_tab_adds_disables_and_sets_code(qtbot, store):
    from PySide6.QtTest import QTest

    from kiosk.ui.cashiers_tab import CashiersTab

    auth = CashierAuth(store)
    auth.add("C001", "王芳", "1234")
    tab = CashiersTab(None, auth=auth)
    qtbot.addWidget(tab)
    tab.show()
    assert tab.rows() == [["C001", "王芳", "yes", "no"]]
    # the two codes differ: nothing added
    QTest.keyClicks(tab.id_field, "C002")
    tab.name_field.insert("李明")  # (Chinese comes from an input method, not key clicks)
    QTest.keyClicks(tab.code_field, "5678")
    QTest.keyClicks(tab.again_field, "5679")
    click(tab.add_button)
    assert "differ" in tab.message.text() and len(auth.list()) == 1
    # a code another cashier has: refused with the reason
    tab.code_field.clear()
    QTest.keyClicks(tab.code_field, "1234")
    QTest.keyClicks(tab.again_field, "1234")
    click(tab.add_button)
    assert "already used" in tab.message.text() and len(auth.list()) == 1
    for field, text in ((tab.code_field, "5678"), (tab.again_field, "5678"),
                        (tab.badge_field, "CARD-0002")):
        field.clear()
        QTest.keyClicks(field, text)
    with qtbot.waitSignal(tab.changed, timeout=5000):
        click(tab.add_button)
    assert tab.rows() == [["C001", "王芳", "yes", "no"], ["C002", "李明", "yes", "yes"]]
    assert tab.id_field.text() == "" and tab.code_field.text() == ""
    assert auth.verify_code("5678", now=0).id == "C002"
    assert auth.verify_badge("CARD-0002").id == "C002"
    assert tab.selected_id() == "C002"
    # disable and enable the selected cashier
    click(tab.active_button)
    assert tab.rows()[1][2] == "no" and auth.verify_code("5678", now=0) is None
    assert tab.active_button.text() == "Enable"
    click(tab.active_button)
    assert tab.rows()[1][2] == "yes"
    # a new code (what the two input dialogs hand over)
    assert not tab.set_code("C002", "2468", "2469")
    assert tab.set_code("C002", "2468", "2468")
    assert auth.verify_code("2468", now=0).id == "C002"
    actions = [(r["action"], r["role"], r["subject"]) for r in store.audit_log()]
    assert actions[:4] == [("cashier_code_set", "staff", "C002"),
                           ("cashier_enabled", "staff", "C002"),
                           ("cashier_disabled", "staff", "C002"),
                           ("cashier_added", "staff", "C002")]
