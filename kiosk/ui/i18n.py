"""Translations: English source strings, ``resources/i18n/kiosk_<lang>.qm`` for the others.

``set_language(app, "zh_CN")`` swaps the installed QTranslator; Qt then sends every widget a
``LanguageChange`` event and the widgets re-read their texts (``retranslate``).
"""
from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, QLocale, QTranslator

from kiosk.paths import resources_dir

log = logging.getLogger(__name__)

LANGUAGES = ("zh_CN", "en")
I18N_DIR = resources_dir() / "i18n"


def qm_path(lang: str) -> Path:
    return I18N_DIR / f"kiosk_{lang}.qm"


def ts_path(lang: str) -> Path:
    return I18N_DIR / f"kiosk_{lang}.ts"


_installed: dict[int, QTranslator] = {}
_installed_qt: dict[int, QTranslator] = {}


def qt_qm_path(lang: str) -> Path:
    """Qt's own translations (the texts of Qt's dialogs and buttons) shipped with PySide6."""
    from PySide6.QtCore import QLibraryInfo

    return Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)) / f"qtbase_{lang}.qm"


def current_language(app: QCoreApplication | None = None) -> str:
    app = app or QCoreApplication.instance()
    return app.property("kioskLanguage") or "en" if app else "en"


def set_language(app: QCoreApplication, lang: str) -> bool:
    """Install ``lang``'s translations (``"en"``: none).  Returns False when its .qm is missing
    (the UI then stays in English)."""
    old = _installed.pop(id(app), None)
    if old is not None:
        app.removeTranslator(old)
    old = _installed_qt.pop(id(app), None)
    if old is not None:
        app.removeTranslator(old)
    if lang != "en":  # Qt's dialogs (print, file, message boxes) in the same language
        qt_tr = QTranslator(app)
        if qt_tr.load(str(qt_qm_path(lang))):
            app.installTranslator(qt_tr)
            _installed_qt[id(app)] = qt_tr
        else:
            log.warning("no Qt translations for %s at %s", lang, qt_qm_path(lang))
    ok = True
    if lang != "en":
        tr = QTranslator(app)
        if tr.load(str(qm_path(lang))):
            app.installTranslator(tr)
            _installed[id(app)] = tr
        else:
            log.warning("no translations for %s at %s", lang, qm_path(lang))
            ok = False
    app.setProperty("kioskLanguage", lang if ok else "en")
    QLocale.setDefault(QLocale(lang if ok else "en_US"))
    # widgets get LanguageChange as posted events: deliver them now, so the whole UI has
    # switched when this returns
    QCoreApplication.sendPostedEvents(None, QEvent.Type.LanguageChange)
    return ok


def retranslating(cls):
    """Give a widget class a changeEvent that calls its ``retranslate`` on LanguageChange."""
    def changeEvent(self, event):
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super(cls, self).changeEvent(event)

    cls.changeEvent = changeEvent
    return cls
