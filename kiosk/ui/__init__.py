"""The kiosk's Qt (PySide6) user interface.

* :mod:`.app`: ``main(argv)``, start-up (engine opened off the GUI thread), wiring.
* :mod:`.controller`: capture thread, recognition worker thread and the checkout session.
* :mod:`.main_window`: the shopper view (live tray, receipt, total, finish).
* :mod:`.correction`: the cashier's correction panel; :mod:`.receipt_dialog`: the final receipt.
* :mod:`.pin` and :mod:`.staff`: staff mode behind a PIN (enrol, catalogue, tray, camera).
* :mod:`.i18n`: Qt translations (``resources/i18n``), switched live.
"""
