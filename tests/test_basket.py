"""Receipts, the basket and money handling."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from kiosk.basket import Receipt, ReceiptLine, build_receipt
from kiosk.catalog import Product
from kiosk.money import MAX_PRICE, format_price, parse_price

PRODUCTS = {
    "milk": Product("milk", "Oatly Oat Milk", 1990),
    "apple": Product("apple", "Golden Delicious", 350),
    "kiwi": Product("kiwi", "Kiwi", None),
    "euro": Product("euro", "Imported", 100, currency="EUR"),
}


# -- money --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, fen",
    [
        ("3.50", 350),
        ("3.5", 350),
        ("3", 300),
        ("0", 0),
        ("0.01", 1),
        ("¥3.50", 350),
        ("￥3.50", 350),
        (" 12.30 ", 1230),
        ("3.50元", 350),
        ("1000000.00", MAX_PRICE),
        ("19.99", 1999),  # a float would give 1998.9999...
        (Decimal("2.10"), 210),
        (7, 700),
    ],
)
def test_parse_price(text, fen):
    assert parse_price(text) == fen


@pytest.mark.parametrize(
    "text, why",
    [
        ("-1", "negative"),
        ("-0.50", "negative"),
        ("abc", "not a number"),
        ("NaN", "not a number"),
        ("inf", "not a number"),
        ("1e3", "not a number"),
        ("3,50", "not a number"),
        ("", "empty"),
        ("   ", "empty"),
        ("3.555", "more than 2 decimals"),
        ("1000000.01", "absurd"),
        ("99999999", "absurd"),
        (3.5, "not float"),
    ],
)
def test_parse_price_rejects(text, why):
    with pytest.raises(ValueError) as info:
        parse_price(text)
    message = str(info.value)
    assert repr(text) in message  # the message names the bad value
    if why != "not float":
        assert why in message


@pytest.mark.parametrize(
    "fen, currency, text",
    [(350, "CNY", "¥3.50"), (5, "CNY", "¥0.05"), (0, "CNY", "¥0.00"), (-350, "CNY", "-¥3.50"),
     (123456, "CNY", "¥1234.56"), (1999, "USD", "$19.99"), (100, "XYZ", "1.00 XYZ")],
)
def test_format_price(fen, currency, text):
    assert format_price(fen, currency) == text


def test_format_parse_round_trip():
    for fen in (0, 1, 9, 10, 99, 100, 101, 12345, MAX_PRICE):
        assert parse_price(format_price(fen)) == fen


def test_format_price_refuses_floats():
    with pytest.raises(TypeError):
        format_price(3.5)


# -- receipts -----------------------------------------------------------------------------------


def test_receipt_groups_by_sku_in_order_of_first_appearance():
    receipt = build_receipt(["apple", "milk", "apple", ("milk", 2), "apple"], PRODUCTS)
    assert [(l.sku, l.qty) for l in receipt.lines] == [("apple", 3), ("milk", 3)]
    assert receipt.lines[0] == ReceiptLine("apple", "Golden Delicious", 3, 350, 1050)
    assert receipt.lines[1].amount == 3 * 1990
    assert receipt.total == 1050 + 5970
    assert isinstance(receipt.total, int)
    assert receipt.currency == "CNY"
    assert receipt.unpriced == []
    assert receipt.complete
    assert receipt.item_count == 6
    assert receipt.format_total() == "¥70.20"


def test_receipt_exact_integer_arithmetic():
    products = {"x": Product("x", "X", 10)}  # 0.10 * 3 is not 0.3 in floats
    assert build_receipt([("x", 3)], products).total == 30


def test_receipt_to_dict_matches_json_shape():
    d = build_receipt(["milk", "apple", "milk"], PRODUCTS).to_dict()
    assert d == {
        "lines": [
            {"sku": "milk", "name": "Oatly Oat Milk", "qty": 2, "unit_price": 1990, "amount": 3980},
            {"sku": "apple", "name": "Golden Delicious", "qty": 1, "unit_price": 350, "amount": 350},
        ],
        "total": 4330,
        "currency": "CNY",
    }
    assert json.loads(json.dumps(d, ensure_ascii=False)) == d


def test_unpriced_lines_are_flagged_with_zero_amount():
    receipt = build_receipt(["kiwi", "apple", "kiwi"], PRODUCTS)
    kiwi = receipt.lines[0]
    assert (kiwi.sku, kiwi.qty, kiwi.unit_price, kiwi.amount, kiwi.priced) == ("kiwi", 2, None, 0, False)
    assert receipt.unpriced == ["kiwi"]
    assert receipt.total == 350
    assert not receipt.complete


def test_empty_receipt():
    receipt = build_receipt([], PRODUCTS)
    assert receipt.lines == () and receipt.total == 0 and not receipt.complete
    assert receipt.to_dict() == {"lines": [], "total": 0, "currency": "CNY"}


@pytest.mark.parametrize(
    "items, message",
    [
        (["nope"], "not in the catalogue"),
        ([("apple", 0)], "positive integer"),
        ([("apple", -1)], "positive integer"),
        ([("apple", 1.5)], "positive integer"),
        (["apple", "euro"], "one currency"),
    ],
)
def test_receipt_rejects(items, message):
    with pytest.raises(ValueError, match=message):
        build_receipt(items, PRODUCTS)


def test_receipt_of_pairs_follows_the_basket_as_it_changes():
    """(sku, qty) pairs as the checkout hands them over: grouped in order of first appearance,
    an overridden item moving to its new product, unpriced lines flagged, totals exact."""
    r = build_receipt([("apple", 1), ("milk", 2), ("apple", 1)], PRODUCTS)
    assert [(l.sku, l.qty) for l in r.lines] == [("apple", 2), ("milk", 2)]
    assert build_receipt([("apple", 1), ("milk", 5), ("apple", 1)], PRODUCTS).total == 2 * 350 + 5 * 1990
    r = build_receipt([("kiwi", 1), ("milk", 5), ("apple", 1)], PRODUCTS)  # first item was a kiwi
    assert [(l.sku, l.qty) for l in r.lines] == [("kiwi", 1), ("milk", 5), ("apple", 1)]
    assert r.unpriced == ["kiwi"]
    assert build_receipt([("milk", 5)], PRODUCTS).to_dict()["total"] == 5 * 1990
    assert build_receipt([], PRODUCTS).total == 0


def test_receipt_is_frozen():
    r = build_receipt(["apple"], PRODUCTS)
    assert isinstance(r, Receipt)
    with pytest.raises(AttributeError):
        r.lines = ()  # type: ignore[misc]
