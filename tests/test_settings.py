"""Settings file: defaults, validation with clear messages, atomic commented writing, fuzz."""
from __future__ import annotations

import stat

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from kiosk.settings import (Settings, SettingsError, default_settings_path, format_settings,
                            load_settings, parse_settings, save_settings, with_changes)


def test_missing_file_gives_defaults(tmp_path):
    s = load_settings(tmp_path / "nope.toml")
    assert s == Settings()
    assert s.recognition.threshold is None and s.camera.source == "auto"
    assert s.store.currency == "CNY" and s.ui.language == "zh_CN"


def test_default_path_under_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KIOSK_DATA_DIR", str(tmp_path / "data"))
    assert default_settings_path() == tmp_path / "data" / "settings.toml"
    assert load_settings() == Settings()  # default path, no file yet


VALID = [
    ("", {}),
    ('[camera]\nsource = "demo"', {("camera", "source"): "demo"}),
    ("[camera]\nsource = 2\nwidth = 640\nheight = 480\nfps = 15",
     {("camera", "source"): 2, ("camera", "width"): 640, ("camera", "fps"): 15}),
    ('[camera]\nsource = "/videos/tray.mp4"', {("camera", "source"): "/videos/tray.mp4"}),
    ("[recognition]\nthreshold = 0.62\nk = 7\nsettle_ms = 0",
     {("recognition", "threshold"): 0.62, ("recognition", "k"): 7,
      ("recognition", "settle_ms"): 0}),
    ("[recognition]\nthreshold = 1", {("recognition", "threshold"): 1.0}),
    ('[recognition]\ndetector = "paddle:/models/picodet"',
     {("recognition", "detector"): "paddle:/models/picodet"}),
    ('[store]\ncurrency = "HKD"\nname = "小店"', {("store", "currency"): "HKD",
                                                   ("store", "name"): "小店"}),
    ('[ui]\nlanguage = "en"\nkiosk_mode = true\nfullscreen = true\nfont_scale = 1.5',
     {("ui", "language"): "en", ("ui", "kiosk_mode"): True, ("ui", "font_scale"): 1.5}),
    ("[staff]\nsession_timeout_s = 60\nmax_pin_attempts = 3\nlockout_s = 10",
     {("staff", "max_pin_attempts"): 3, ("staff", "lockout_s"): 10}),
    ('[paths]\ndb = "/srv/k/catalog.db"\ndata_dir = "/srv/k"',
     {("paths", "db"): "/srv/k/catalog.db", ("paths", "data_dir"): "/srv/k"}),
    ("camera.width = 800", {("camera", "width"): 800}),  # dotted keys are TOML too
]


@pytest.mark.parametrize("text,expect", VALID)
def test_valid(text, expect):
    s = parse_settings(text, "test.toml")
    for (section, key), value in expect.items():
        got = getattr(getattr(s, section), key)
        assert got == value and type(got) is type(value)


INVALID = [
    ("[camera\nwidth = 1", "not valid TOML"),
    ("[cam]\nwidth = 1", "unknown section [cam]"),
    ("[camera]\nwidht = 1", "[camera] unknown key 'widht'"),
    ("camera = 3", "camera must be a [camera] section"),
    ('[camera]\nwidth = "640"', "[camera] width must be a whole number"),
    ("[camera]\nwidth = 640.0", "[camera] width must be a whole number"),
    ("[camera]\nwidth = true", "[camera] width must be a whole number"),
    ("[camera]\nwidth = 0", "[camera] width must be between 16 and 8192"),
    ("[camera]\nfps = 1000", "[camera] fps must be between"),
    ("[camera]\nsource = -1", "[camera] source a camera index must be between"),
    ('[camera]\nsource = ""', "[camera] source must be non-empty text"),
    ("[camera]\nsource = 1.5", "[camera] source must be"),
    ("[recognition]\nthreshold = 1.5", "[recognition] threshold must be between 0 and 1"),
    ("[recognition]\nthreshold = nan", "[recognition] threshold must be between"),
    ('[recognition]\nthreshold = "high"', "[recognition] threshold must be a number"),
    ("[recognition]\nk = 0", "[recognition] k must be between 1 and 100"),
    ("[recognition]\nsettle_ms = -5", "[recognition] settle_ms"),
    ('[recognition]\ndetector = "yolo"', "[recognition] detector must be \"tray\""),
    ('[recognition]\ndetector = "paddle:"', "[recognition] detector"),
    ('[store]\ncurrency = "rmb"', "[store] currency must be a 3-letter"),
    ('[store]\nname = "a\\u0001b"', "[store] name must not contain control"),
    ('[ui]\nlanguage = "fr"', "[ui] language must be one of 'zh_CN', 'en'"),
    ('[ui]\nfullscreen = "yes"', "[ui] fullscreen must be true or false"),
    ("[ui]\nfont_scale = 10", "[ui] font_scale must be between"),
    ("[staff]\nmax_pin_attempts = 0", "[staff] max_pin_attempts"),
    ("[staff]\nlockout_s = 1979-05-27", "[staff] lockout_s must be a whole number"),
    ("[paths]\ndb = 3", "[paths] db must be non-empty text"),
    ("[ui.extra]\nx = 1", "[ui] unknown key 'extra'"),
]


@pytest.mark.parametrize("text,message", INVALID)
def test_invalid(text, message, tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as e:
        load_settings(path)
    assert message in str(e.value)
    assert str(path) in str(e.value)  # the message names the file


def test_not_utf8(tmp_path):
    path = tmp_path / "s.toml"
    path.write_bytes(b"[store]\nname = \"\xff\"\n")
    with pytest.raises(SettingsError, match="not UTF-8"):
        load_settings(path)


def test_round_trip_and_file_mode(tmp_path):
    s = Settings()
    s = with_changes(s, "camera", source=1, width=640, height=480)
    s = with_changes(s, "recognition", threshold=0.55, detector="paddle:/m")
    s = with_changes(s, "ui", language="en", kiosk_mode=True, font_scale=1.25)
    s = with_changes(s, "store", name='Quote " and \\ back')
    s = with_changes(s, "paths", db="/data/c.db")
    path = save_settings(s, tmp_path / "sub" / "settings.toml")
    assert load_settings(path) == s
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["settings.toml"]  # no temp files left
    text = path.read_text(encoding="utf-8")
    assert text.count("\n# ") > 10  # commented
    assert "# data_dir = " in text  # unset optional values shown commented out
    # overwrite keeps the mode and replaces the content
    save_settings(Settings(), path)
    assert load_settings(path) == Settings()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_default_file_parses():
    assert parse_settings(format_settings(Settings())) == Settings()


def test_with_changes_checks():
    with pytest.raises(SettingsError, match="k must be between"):
        with_changes(Settings(), "recognition", k=0)
    with pytest.raises(SettingsError, match="unknown key"):
        with_changes(Settings(), "ui", colour="red")
    s = with_changes(Settings(), "recognition", threshold=0.7)
    assert with_changes(s, "recognition", threshold=None).recognition.threshold is None


def test_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("KIOSK_DATA_DIR", str(tmp_path / "d"))
    s = Settings()
    assert s.db_path() == tmp_path / "d" / "catalog.db"
    s = with_changes(s, "paths", data_dir=str(tmp_path / "e"))
    assert s.db_path() == tmp_path / "e" / "catalog.db"
    s = with_changes(s, "paths", db=str(tmp_path / "x.db"))
    assert s.db_path() == tmp_path / "x.db"


# ----------------------------------------------------------------------------- fuzzing
SECTIONS = ["camera", "recognition", "store", "ui", "staff", "paths", "other"]
KEYS = ["source", "width", "height", "fps", "threshold", "k", "settle_ms", "detector",
        "background", "currency", "name", "language", "kiosk_mode", "fullscreen", "font_scale",
        "session_timeout_s", "max_pin_attempts", "lockout_s", "db", "data_dir", "x"]
VALUES = st.one_of(
    st.integers(-10 ** 20, 10 ** 20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: repr(f).replace("inf", "inf")),
    st.sampled_from(["true", "false", "nan", "-inf", "1979-05-27", "07:32:00", "[]", "{}",
                     "[1, 2]", '{a = 1}', '"auto"', '"demo"', '"tray"', '"paddle:x"', '"CNY"',
                     '"en"', '"zh_CN"', '""', "'lit'", '"""multi"""', "0x1F", "1_000"]),
    st.text(max_size=12).map(lambda t: '"' + t + '"'),
)
LINE = st.one_of(
    st.tuples(st.sampled_from(KEYS), VALUES).map(lambda kv: f"{kv[0]} = {kv[1]}"),
    st.sampled_from(SECTIONS).map(lambda s: f"[{s}]"),
    st.text(max_size=20),
)


@hsettings(max_examples=300, deadline=None)
@given(st.lists(LINE, max_size=12))
def test_fuzz_tomlish(lines):
    try:
        s = parse_settings("\n".join(lines), "fuzz.toml")
    except SettingsError:
        return
    assert isinstance(s, Settings)
    assert parse_settings(format_settings(s)) == s  # whatever loads also saves and reloads


@hsettings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_any_text(text):
    try:
        assert isinstance(parse_settings(text), Settings)
    except SettingsError:
        pass


def test_deep_nesting():
    with pytest.raises(SettingsError):
        parse_settings("x = " + "[" * 5000 + "]" * 5000)
