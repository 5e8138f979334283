"""The kiosk's Qt (PySide6) user interface.

* :mod:`.app`: ``main(argv)``, start-up (engine opened off the GUI thread), wiring.
* :mod:`.controller`: capture thread, recognition worker thread and the checkout session.
* :mod:`.main_window`: the shopper view (live tray, receipt, total, finish).
* :mod:`.correction`: the cashier's correction panel; :mod:`.receipt_dialog`: the final receipt.
* :mod:`.pin` and :mod:`.staff`: staff mode behind a PIN (enrol, catalogue, tray, camera).
* :mod:`.i18n`: Qt translations (``resources/i18n``), switched live.
"""


def _keep_none_alive() -> None:
    """PySide6 6.12 on CPython 3.11 takes one reference off ``None`` each time a Qt method that
    returns nothing is called (1000 ``QRectF.adjust`` calls: ``sys.getrefcount(None)`` 1000
    lower).  The kiosk makes thousands of such calls a second (painting at 30 fps), so None's
    count ran out and the process aborted ("Fatal Python error: none_dealloc: deallocating None")
    about a minute into ``kiosk bench --soak --gui``.  CPython 3.12+ never frees None (PEP 683,
    immortal objects); on older CPython, give None a count no run can use up (2**60 calls)."""
    import sys

    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return
    import ctypes

    refcount = ctypes.c_ssize_t.from_address(id(None))  # ob_refcnt: PyObject's first field
    if abs(refcount.value - sys.getrefcount(None)) > 8:  # not where it should be: leave it
        return
    if refcount.value < 1 << 59:
        refcount.value += 1 << 60


_keep_none_alive()
