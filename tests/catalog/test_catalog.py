"""The SQLite catalogue: migrations, products, gallery embeddings, receipts, corrections."""
from __future__ import annotations

import sqlite3
import time

import numpy as np
import pytest

from kiosk.catalog import database as catalog_mod  # where the migrations are applied
from kiosk.basket import build_receipt
from kiosk.catalog import SCHEMA_VERSION, Catalog, CatalogError, Product, UnknownProductError
from kiosk.embed import Embeddings, l2_normalize

EAN = "4006381333931"


@pytest.fixture
def cat(tmp_path):
    c = Catalog(tmp_path / "catalog.db")
    yield c
    c.close()


def vectors(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    return l2_normalize(np.random.default_rng(seed).standard_normal((n, dim)))


def dump(c: Catalog) -> list[str]:
    return list(c.conn.iterdump())


# -- opening and migrations ---------------------------------------------------------------------


def test_fresh_db_gets_latest_schema(tmp_path):
    with Catalog(tmp_path / "sub" / "c.db") as c:
        assert c.schema_version == SCHEMA_VERSION >= 1
        assert set(c.table_counts()) >= {"products", "gallery_images", "transactions", "transaction_lines",
                                          "corrections"}
        assert c.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_reopen_is_idempotent(tmp_path):
    path = tmp_path / "c.db"
    with Catalog(path) as c:
        c.add_product("a", "Apple", 100)
        schema = c.conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    for _ in range(2):
        with Catalog(path) as c:
            assert c.schema_version == SCHEMA_VERSION
            assert c.conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema
            assert c.get_product("a") == Product("a", "Apple", 100)


def test_newer_db_is_refused(tmp_path):
    path = tmp_path / "c.db"
    Catalog(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(CatalogError, match="newer"):
        Catalog(path)


def test_migrations_apply_in_order_and_a_failing_one_changes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "c.db"
    with Catalog(path) as c:
        c.add_product("a", "Apple", 100)
        before = dump(c)

    applied = []

    def m_add_table(db):
        applied.append(2)
        db.execute("CREATE TABLE extra (x INTEGER)")

    def m_broken(db):
        applied.append(3)
        db.execute("INSERT INTO extra VALUES (1)")
        raise RuntimeError("migration 3 failed")

    monkeypatch.setattr(catalog_mod, "MIGRATIONS", [*catalog_mod.MIGRATIONS, m_add_table, m_broken])
    monkeypatch.setattr(catalog_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 2)
    with pytest.raises(RuntimeError, match="migration 3"):
        Catalog(path)
    assert applied == [2, 3]
    monkeypatch.undo()
    with Catalog(path) as c:  # still the old version, old data, no half-made table
        assert c.schema_version == SCHEMA_VERSION
        assert dump(c) == before

    monkeypatch.setattr(catalog_mod, "MIGRATIONS", [*catalog_mod.MIGRATIONS, m_add_table])
    monkeypatch.setattr(catalog_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with Catalog(path) as c:
        assert c.schema_version == SCHEMA_VERSION + 1
        assert "extra" in c.table_counts()


# -- products -----------------------------------------------------------------------------------


def test_add_get_and_duplicates(cat):
    p = cat.add_product(" milk-1l ", "Oatly 1L", 1990, barcode=EAN)
    assert p == Product("milk-1l", "Oatly 1L", 1990, "CNY", EAN, True)
    assert cat.get_product("milk-1l") == p
    assert cat.get_product("nope") is None
    with pytest.raises(ValueError, match="already exists"):
        cat.add_product("milk-1l", "Other")
    with pytest.raises(ValueError, match="already belongs"):
        cat.add_product("milk-2l", "Oatly 2L", barcode=EAN)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(sku="", name="x"), "sku"),
        (dict(sku="   ", name="x"), "sku"),
        (dict(sku=None, name="x"), "sku"),
        (dict(sku="a\nb", name="x"), "control"),
        (dict(sku="a", name=""), "name"),
        (dict(sku="a", name="x", price=-1), "negative"),
        (dict(sku="a", name="x", price=3.5), "integer"),
        (dict(sku="a", name="x", price="350"), "integer"),
        (dict(sku="a", name="x", price=True), "integer"),
        (dict(sku="a", name="x", price=10**12), "more than"),
        (dict(sku="a", name="x", currency="yuan"), "currency"),
        (dict(sku="a", name="x", barcode="12ab"), "digits"),
        (dict(sku="a", name="x", barcode="4006381333932"), "check digit"),
        (dict(sku="a", name="x", barcode=""), "digits"),
    ],
)
def test_product_validation(cat, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cat.add_product(**kwargs)
    assert cat.table_counts()["products"] == 0


def test_upsert_keeps_fields_not_given(cat):
    created = cat.upsert_product("a", "Apple")
    assert created == Product("a", "Apple", None)
    cat.upsert_product("a", price=350, barcode=EAN)
    assert cat.get_product("a") == Product("a", "Apple", 350, barcode=EAN)
    cat.upsert_product("a", "Red apple")
    assert cat.get_product("a") == Product("a", "Red apple", 350, barcode=EAN)
    cat.upsert_product("a", price=None)
    assert cat.get_product("a").price is None
    with pytest.raises(ValueError, match="needs a name"):
        cat.upsert_product("b", price=1)


def test_set_price_and_active(cat):
    cat.add_product("a", "Apple")
    cat.add_product("b", "Banana", 100)
    cat.set_price("a", 350)
    assert cat.get_product("a").price == 350
    with pytest.raises(ValueError):
        cat.set_price("a", -5)
    with pytest.raises(ValueError):
        cat.set_price("a", 3.5)
    assert cat.get_product("a").price == 350
    with pytest.raises(UnknownProductError, match="nope"):
        cat.set_price("nope", 1)
    cat.set_price("a", None)
    assert [p.sku for p in cat.unpriced_products()] == ["a"]

    cat.set_active("b", False)
    assert [p.sku for p in cat.list_products()] == ["a"]
    assert [p.sku for p in cat.list_products(active_only=False)] == ["a", "b"]
    assert cat.get_product("b").active is False
    with pytest.raises(UnknownProductError):
        cat.set_active("nope", True)


def test_search_and_barcode_lookup(cat):
    cat.add_product("milk-oat", "Oatly Oat Milk", 1990, barcode=EAN)
    cat.add_product("milk-soy", "Alpro Soy Milk", 1590)
    cat.add_product("apple-gd", "Golden Delicious 苹果", 350)
    cat.add_product("100pct", "Juice 100%", 500)
    assert [p.sku for p in cat.search_products("milk")] == ["milk-soy", "milk-oat"]  # by name, then sku
    assert [p.sku for p in cat.search_products("OAT")] == ["milk-oat"]
    assert [p.sku for p in cat.search_products("gd")] == ["apple-gd"]
    assert [p.sku for p in cat.search_products("苹果")] == ["apple-gd"]
    assert [p.sku for p in cat.search_products("63813")] == ["milk-oat"]  # barcode substring
    assert [p.sku for p in cat.search_products("%")] == ["100pct"]  # wildcards are literal
    assert cat.search_products("_") == []
    assert [p.sku for p in cat.search_products("milk-oat")] == ["milk-oat"]
    assert cat.search_products("  ") == []
    assert cat.find_by_barcode(EAN).sku == "milk-oat"
    assert cat.find_by_barcode("96385074") is None
    cat.set_active("milk-soy", False)
    assert [p.sku for p in cat.search_products("milk", active_only=True)] == ["milk-oat"]


def test_get_products_many(cat):
    with cat.transaction():
        for i in range(1200):
            cat.add_product(f"s{i}", f"Item {i}", i)
    got = cat.get_products([f"s{i}" for i in range(0, 1200, 2)] + ["missing"])
    assert len(got) == 600 and got["s10"].price == 10


# -- gallery ------------------------------------------------------------------------------------


def test_gallery_round_trip_and_filters(cat):
    cat.add_product("a", "Apple", 100)
    cat.add_product("b", "Banana", 200)
    va, vb = vectors(3, seed=1), vectors(2, seed=2)
    ids_a = cat.add_gallery_images("a", ["a1.jpg", "a2.jpg", "a3.jpg"], Embeddings(va, "m@1"))
    ids_b = cat.add_gallery_images("b", ["b1.jpg", "b2.jpg"], Embeddings(vb, "m@1"))
    cat.add_gallery_images("a", ["a1.jpg"], Embeddings(vectors(1, dim=8), "other@2"))
    assert len(ids_a) == 3 and len(ids_b) == 2

    ids, vecs, skus = cat.gallery_vectors("m@1")
    assert ids.dtype == np.int64 and vecs.dtype == np.float32
    assert ids.tolist() == ids_a + ids_b
    assert skus == ["a", "a", "a", "b", "b"]
    assert np.array_equal(vecs, np.vstack([va, vb]))  # bit-exact
    vecs[0, 0] = 5  # the caller owns the array

    cat.set_active("b", False)
    ids, vecs, skus = cat.gallery_vectors("m@1")
    assert skus == ["a", "a", "a"]
    ids, vecs, skus = cat.gallery_vectors("unknown")
    assert ids.shape == (0,) and vecs.shape == (0, 0) and skus == []

    assert cat.count_gallery() == 6
    assert cat.count_gallery("m@1") == 5
    assert cat.stale_models("m@1") == {"other@2": 1}
    assert cat.stale_models("new@3") == {"m@1": 5, "other@2": 1}
    assert cat.gallery_files() == [("a", "a1.jpg"), ("a", "a2.jpg"), ("a", "a3.jpg"), ("b", "b1.jpg"),
                                   ("b", "b2.jpg")]
    assert cat.gallery_files("b") == [("b", "b1.jpg"), ("b", "b2.jpg")]
    assert [r["file"] for r in cat.gallery_rows(model_id="other@2")] == ["a1.jpg"]

    assert cat.remove_gallery_images([ids_a[0], 999999]) == 1
    assert cat.count_gallery("m@1") == 4
    assert cat.remove_model("other@2") == 1
    assert cat.stale_models("m@1") == {}


def test_gallery_validation(cat):
    cat.add_product("a", "Apple", 100)
    cat.add_gallery_images("a", ["a1.jpg"], Embeddings(vectors(1, dim=16), "m@1"))
    before = dump(cat)
    with pytest.raises(ValueError, match="16-d"):
        cat.add_gallery_images("a", ["a2.jpg"], Embeddings(vectors(1, dim=8), "m@1"))
    with pytest.raises(ValueError, match="2 files but 1"):
        cat.add_gallery_images("a", ["x", "y"], Embeddings(vectors(1), "m@1"))
    with pytest.raises(UnknownProductError):
        cat.add_gallery_images("nope", ["x"], Embeddings(vectors(1), "m@1"))
    with pytest.raises(ValueError, match="NaN"):
        cat.add_gallery_images("a", ["x"], Embeddings(np.full((1, 16), np.nan), "m@1"))
    with pytest.raises(ValueError, match="model_id"):
        cat.add_gallery_images("a", ["x"], Embeddings(vectors(1), ""))
    # a duplicate in the middle of a batch: the rows before it are not kept either
    with pytest.raises(ValueError, match="already in the gallery"):
        cat.add_gallery_images("a", ["new.jpg", "a1.jpg"], Embeddings(vectors(2), "m@1"))
    assert dump(cat) == before
    assert cat.add_gallery_images("a", [], Embeddings(np.zeros((0, 16)), "m@1")) == []


def test_delete_cascades_to_gallery(cat):
    cat.add_product("a", "Apple", 100)
    cat.add_product("b", "Banana", 100)
    cat.add_gallery_images("a", ["a1", "a2"], Embeddings(vectors(2), "m@1"))
    cat.add_gallery_images("b", ["b1"], Embeddings(vectors(1), "m@1"))
    cat.delete_product("a")
    assert cat.get_product("a") is None
    assert cat.gallery_files() == [("b", "b1")]
    with pytest.raises(UnknownProductError):
        cat.delete_product("a")


def test_transaction_rolls_back_everything(cat):
    cat.add_product("a", "Apple", 100)
    before = dump(cat)
    with pytest.raises(RuntimeError):
        with cat.transaction():
            cat.add_product("b", "Banana", 1)
            cat.set_price("a", 999)
            cat.add_gallery_images("b", ["b1"], Embeddings(vectors(1), "m@1"))
            raise RuntimeError("boom")
    assert dump(cat) == before
    # a failing nested block undoes only itself
    with cat.transaction():
        cat.add_product("b", "Banana", 1)
        with pytest.raises(ValueError):
            with cat.transaction():
                cat.add_product("c", "Cherry", 1)
                cat.add_product("c", "Cherry", 1)
    assert [p.sku for p in cat.list_products()] == ["a", "b"]


def test_gallery_vectors_for_any_ids_in_the_order_asked(cat):
    """Rows come back in the order asked, repeats included, whether the ids are dense (one
    scan of their range, skipping rows not asked for) or far apart (looked up by id)."""
    cat.add_product("a", "Apple", 100)
    cat.add_product("b", "Banana", 100)
    va, vb = vectors(300, seed=1), vectors(40, seed=2)
    ids_a = cat.add_gallery_images("a", [f"a{i}" for i in range(300)], Embeddings(va, "m@1"))
    ids_b = cat.add_gallery_images("b", [f"b{i}" for i in range(40)], Embeddings(vb, "m@1"))
    table = dict(zip(ids_a + ids_b, np.vstack([va, vb])))
    cat.set_active("b", False)  # (rows by id: products' states do not matter)
    for ask in ([*ids_a[::-1]],                              # dense, backwards
                [ids_a[5], ids_b[3], ids_a[5], ids_a[0]],    # repeats
                ids_a[::3] + ids_b[-1:],                     # gaps: rows not asked for
                [ids_a[0], ids_a[0] + 10_000_000]):          # far apart (one missing)
        if ask[-1] > max(table):
            with pytest.raises(KeyError, match=str(ask[-1])):
                cat.gallery_vectors_for(ask)
            continue
        got = cat.gallery_vectors_for(np.array(ask))
        assert got.dtype == np.float32 and got.flags.c_contiguous
        assert np.array_equal(got, np.stack([table[i] for i in ask]))  # bit-exact
    assert cat.gallery_vectors_for([]).shape == (0, 0)
    cat.add_gallery_images("a", ["small"], Embeddings(vectors(1, dim=8), "other@2"))
    small = cat.gallery_rows(model_id="other@2")[0]["id"]
    with pytest.raises(CatalogError, match="mix embedding sizes"):
        cat.gallery_vectors_for([ids_a[0], small])


def test_gallery_vectors_is_fast_for_100k_rows(cat):
    n, dim = 100_000, 128
    cat.add_product("a", "Apple", 100)
    cat.add_product("b", "Banana", 100)
    v = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    with cat.transaction():
        cat.add_gallery_images("a", [f"a{i}" for i in range(n // 2)], Embeddings(v[: n // 2], "m@1"))
        cat.add_gallery_images("b", [f"b{i}" for i in range(n // 2, n)], Embeddings(v[n // 2 :], "m@1"))
    t = time.perf_counter()
    ids, vecs, skus = cat.gallery_vectors("m@1")
    elapsed = time.perf_counter() - t
    assert vecs.shape == (n, dim) and np.array_equal(vecs, v) and len(skus) == n
    assert elapsed < 3.0, f"gallery_vectors took {elapsed:.2f}s for {n} rows"


# -- receipts and corrections -------------------------------------------------------------------


def test_record_transaction(cat):
    cat.add_product("a", "Apple", 350)
    cat.add_product("m", "Milk", 1990)
    receipt = build_receipt(["a", "m", "a"], cat.get_products(["a", "m"]))
    tx = cat.record_transaction(receipt)
    stored = cat.get_transaction(tx)
    assert {k: stored[k] for k in ("lines", "total", "currency")} == receipt.to_dict()
    cat.delete_product("a")  # receipts outlive products
    assert cat.get_transaction(tx)["lines"][0]["sku"] == "a"
    assert cat.get_transaction(tx + 1) is None


def test_record_transaction_refuses_bad_receipts(cat):
    cat.add_product("k", "Kiwi")  # unpriced
    cat.add_product("a", "Apple", 350)
    products = cat.get_products()
    before = dump(cat)
    with pytest.raises(ValueError, match="unpriced"):
        cat.record_transaction(build_receipt(["a", "k"], products))
    with pytest.raises(ValueError, match="empty"):
        cat.record_transaction(build_receipt([], products))
    bad_total = build_receipt(["a"], products).to_dict() | {"total": 1}
    with pytest.raises(ValueError, match="total"):
        cat.record_transaction(bad_total)
    bad_amount = build_receipt(["a"], products).to_dict()
    bad_amount["lines"][0]["amount"] = 349
    with pytest.raises(ValueError, match="amount"):
        cat.record_transaction(bad_amount)
    assert dump(cat) == before


def test_corrections_log(cat):
    cat.add_product("a", "Apple", 350)
    tx = cat.record_transaction(build_receipt(["a"], cat.get_products()))
    cid = cat.log_correction([10, 20, 110, 220], "b", "a", transaction_id=tx)
    cat.log_correction({"x": 1}, None, "a")
    rows = cat.corrections()
    assert rows[0]["id"] == cid and rows[0]["box"] == [10, 20, 110, 220]
    assert (rows[0]["from_sku"], rows[0]["to_sku"], rows[0]["transaction_id"]) == ("b", "a", tx)
    assert rows[1]["transaction_id"] is None and rows[1]["box"] == {"x": 1}
