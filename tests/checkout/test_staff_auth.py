"""Staff PIN: hashing, lockout with back-off (injected time), persistence, formats."""
from __future__ import annotations

import pytest

from kiosk.catalog import Catalog
from kiosk.checkout.staff_auth import PinFormatError, StaffAuth, StaffSession


@pytest.fixture
def db(tmp_path):
    return tmp_path / "catalog.db"


@pytest.fixture
def store(db):
    with Catalog(db) as cat:
        yield cat


def test_first_run_has_no_pin(store):
    auth = StaffAuth(store)
    assert not auth.has_pin() and auth.needs_setup
    assert auth.verify("1234", now=0) is False  # nothing to compare with


def test_right_and_wrong_pin(store):
    auth = StaffAuth(store)
    auth.set_pin("2468")
    assert auth.has_pin() and not auth.needs_setup
    assert auth.verify("2468", now=0)
    assert not auth.verify("2469", now=0)
    assert not auth.verify("24680", now=0)
    assert auth.failures() == 2
    assert auth.verify("2468", now=1)
    assert auth.failures() == 0  # a right PIN clears the count


@pytest.mark.parametrize("pin", ["123", "123456789", "12a4", "", " 1234", "1234 ", "１２３４",
                                 "12.4", None, 1234, b"1234"])
def test_bad_pin_formats_are_refused(store, pin):
    auth = StaffAuth(store)
    with pytest.raises(PinFormatError):
        auth.set_pin(pin)
    assert not auth.has_pin()


@pytest.mark.parametrize("pin", ["0000", "1234", "12345678", "007007"])
def test_good_pin_formats(store, pin):
    auth = StaffAuth(store)
    auth.set_pin(pin)
    assert auth.verify(pin, now=0)


def test_malformed_attempt_counts_as_wrong(store):
    auth = StaffAuth(store, max_attempts=2, lockout_s=10)
    auth.set_pin("1111")
    assert not auth.verify("abc", now=0)
    assert not auth.verify(None, now=0)  # type: ignore[arg-type]
    assert auth.locked_until(now=0) == 10


def test_lockout_and_backoff(store):
    auth = StaffAuth(store, max_attempts=3, lockout_s=30)
    auth.set_pin("4321")
    t = 1000.0
    for _ in range(3):
        assert not auth.verify("0000", now=t)
    assert auth.locked_until(now=t) == t + 30
    # while locked even the right PIN is refused, and attempts do not extend the lockout
    assert not auth.verify("4321", now=t + 29)
    assert auth.locked_until(now=t + 29) == t + 30
    assert auth.locked_until(now=t + 30) is None
    # second lockout: twice as long
    t2 = t + 31
    for _ in range(3):
        assert not auth.verify("0000", now=t2)
    assert auth.locked_until(now=t2) == t2 + 60
    t3 = t2 + 61
    for _ in range(3):
        assert not auth.verify("0000", now=t3)
    assert auth.locked_until(now=t3) == t3 + 120
    # a right PIN after the lockout resets the back-off
    assert auth.verify("4321", now=t3 + 121)
    for _ in range(3):
        assert not auth.verify("0000", now=t3 + 200)
    assert auth.locked_until(now=t3 + 200) == t3 + 230


def test_lockout_survives_restart(db):
    with Catalog(db) as cat:
        auth = StaffAuth(cat, max_attempts=2, lockout_s=50)
        auth.set_pin("13579")
        assert not auth.verify("00000", now=100)
    with Catalog(db) as cat:  # restart: one failure is remembered
        auth = StaffAuth(cat, max_attempts=2, lockout_s=50)
        assert auth.failures() == 1
        assert not auth.verify("00000", now=101)
        assert auth.locked_until(now=101) == 151
    with Catalog(db) as cat:
        auth = StaffAuth(cat, max_attempts=2, lockout_s=50)
        assert auth.locked_until(now=120) == 151
        assert not auth.verify("13579", now=120)
        assert auth.verify("13579", now=152)


def test_pin_never_stored_in_clear(db):
    pin = "73194628"
    with Catalog(db) as cat:
        auth = StaffAuth(cat)
        auth.set_pin(pin)
        assert auth.verify(pin, now=0)
        row = cat.get_staff_auth()
        assert len(row["salt"]) == 16 and len(row["pin_hash"]) == 32
        assert '"n": 16384' in row["params"]
    data = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.is_file())
    assert pin.encode() not in data
    assert pin.encode("utf-16-le") not in data


def test_same_pin_different_salt(tmp_path):
    rows = []
    for n in range(2):
        with Catalog(tmp_path / f"c{n}.db") as cat:
            StaffAuth(cat).set_pin("5555")
            rows.append(cat.get_staff_auth())
    assert rows[0]["salt"] != rows[1]["salt"]
    assert rows[0]["pin_hash"] != rows[1]["pin_hash"]


def test_change_pin(store):
    auth = StaffAuth(store)
    auth.set_pin("1111")
    auth.set_pin("2222")
    assert not auth.verify("1111", now=0)
    assert auth.verify("2222", now=0)


def test_clock_is_injectable(store):
    now = [500.0]
    auth = StaffAuth(store, max_attempts=1, lockout_s=5, clock=lambda: now[0])
    auth.set_pin("9876")
    assert not auth.verify("0000")
    assert auth.locked_until() == 505
    now[0] = 506
    assert auth.locked_until() is None
    assert auth.verify("9876")


def test_staff_session_timeout():
    s = StaffSession(120, now=0)
    assert not s.expired(now=119)
    s.touch(now=100)
    assert not s.expired(now=219)
    assert s.remaining(now=200) == 20
    assert s.expired(now=220)
    s2 = StaffSession(10, now=0)
    s2.end()
    assert s2.expired(now=1)
    with pytest.raises(ValueError):
        StaffSession(0)
