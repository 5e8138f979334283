"""Putting the checkout together from the settings (no Qt here).

One place decides how the parts of a checkout are wired: the window (``kiosk.ui.app``), the
command line, the soak and the tests call :func:`checkout_session`, so every one of them runs
the same till: the same phases and picture-age rule, the same cashier authority, the same calls
for the cashier and the same "ask instead of guessing" rule.
"""
from __future__ import annotations

from typing import Any

from kiosk.settings import Settings


def _get(settings: Any, dotted: str, default: Any = None) -> Any:
    section, key = dotted.split(".")
    value = getattr(getattr(settings, section, None), key, None)
    return default if value is None else value


def cashier_auth(catalog, settings: Settings | None = None):
    """The cashier accounts of ``catalog`` with the settings' lockout rules."""
    from kiosk.checkout.cashier_auth import CashierAuth

    return CashierAuth(catalog,
                       max_attempts=int(_get(settings, "cashier.max_code_attempts", 5)),
                       lockout_s=float(_get(settings, "cashier.lockout_s", 30)))


def checkout_session(engine, settings: Settings | None = None, **overrides):
    """A :class:`kiosk.checkout.session.CheckoutSession` on ``engine`` wired as the kiosk runs it: its
    calls for the cashier stored in the catalogue and published on a
    :class:`kiosk.checkout.calls.CallBoard` (``session.calls``), cashier badges shown to the camera
    checked against the catalogue's cashier accounts, every answer learned as the
    ``[learning]`` settings say (:class:`kiosk.checkout.learn.Learner` as ``on_answer``), and the
    ``[recognition]``, ``[checkout]`` and ``[cashier]`` settings.  ``overrides``: keyword
    arguments of the session (tests: e.g. a shorter ``settle_ms``)."""
    from kiosk.checkout.calls import CallBoard
    from kiosk.checkout.learn import learner_for
    from kiosk.checkout.session import CheckoutSession

    settings = settings if settings is not None else Settings()
    auth = cashier_auth(engine.catalog, settings)
    kw = dict(
        settle_ms=_get(settings, "recognition.settle_ms", 300),
        frozen_after_s=float(settings.checkout.frozen_after_s),
        max_sale_age_s=float(settings.checkout.max_sale_age_s),
        auto_call=bool(settings.checkout.auto_call),
        attendant_timeout_s=float(settings.cashier.session_timeout_s),
        shopper_same_price_choice=bool(settings.cashier.shopper_same_price_choice),
        calls=CallBoard(engine.catalog),
        badge_lookup=auth.verify_badge,
        on_answer=learner_for(engine, settings, background=True),
        # an unsure item gets its new views embedded and fused (never a narrower band)
        fuse_margin=max(0.03, float(engine.decider.unsure_margin)),
    )
    kw.update(overrides)
    return CheckoutSession(engine, **kw)
