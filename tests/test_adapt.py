"""The store's adaptation (kiosk.adapt): within-class normalisation learned from the
gallery's own views, on a real faiss index and the real decision."""
from __future__ import annotations

import numpy as np
import pytest

from kiosk.adapt import Adaptation, search
from kiosk.decide import Decider
from kiosk.retrieve import VectorIndex

D = 32


def unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def lookalikes(rng, n_views=6, nuisance=1.0, signal=0.25):
    """Two look-alike products (a shared base, told apart by a small ``signal`` along axis 1)
    whose pictures vary a lot along axis 0 (light, say) and a little elsewhere, plus two
    other products; returns (ids, vectors, labels) and a query of product A taken in a light
    that product B's views happened to be enrolled in."""
    base = np.zeros(D, np.float32)
    base[2] = 3.0
    rows, labels = [], []
    for sku, offset, light in (("A", +signal, -1.0), ("B", -signal, +1.0)):
        for _ in range(n_views):
            v = base.copy()
            v[1] = offset
            v[0] = nuisance * (light + rng.normal(0, 0.3))
            v[3:] += rng.normal(0, 0.02, D - 3)
            rows.append(v)
            labels.append(sku)
    for sku, axis in (("C", 5), ("E", 6)):
        for _ in range(n_views):
            v = np.zeros(D, np.float32)
            v[axis] = 3.0
            v[0] = nuisance * rng.normal(0, 1.0)
            v[7:] += rng.normal(0, 0.02, D - 7)
            rows.append(v)
            labels.append(sku)
    query = base.copy()
    query[1] = signal
    query[0] = nuisance * 1.0  # A, in B's light
    ids = np.arange(100, 100 + len(rows), dtype=np.int64)
    return ids, unit(np.stack(rows)), labels, unit(query)


@pytest.fixture
def store():
    ids, vectors, labels, query = lookalikes(np.random.default_rng(0))
    index = VectorIndex(D, "m@1", kind="flat")
    index.add(ids, vectors)
    return index, ids, vectors, labels, query


def decide(index, labels, ids, query, adaptation):
    sku_of = dict(zip(ids.tolist(), labels))
    nb = search(index, query[None], 10, adaptation)
    return Decider(threshold=0.0).decide_one(*nb.row(0), sku_of)


def test_lookalike_in_another_light_is_told_apart_only_when_adapted(store):
    index, ids, vectors, labels, query = store
    plain = decide(index, labels, ids, query, None)
    assert plain.sku == "B"  # the light outweighs the small difference between the two
    a = Adaptation(strength=0.1)
    assert a.fit(ids, vectors, labels) and a.active
    adapted = decide(index, labels, ids, query, a)
    assert adapted.sku == "A"
    assert adapted.margin > 0


@pytest.mark.parametrize("labels, rows, max_rows, active", [
    (["A", "A", "B", "B"], 4, 100, True),
    (["A", "B", "C", "D"], 4, 100, False),  # no product with two views: nothing to learn
    (["A", "A", "B", "C"], 4, 100, False),  # one product with two views: not enough
    (["A", "A", "B", "B"], 4, 3, False),  # more rows than max_rows: off
])
def test_when_it_is_active(labels, rows, max_rows, active):
    rng = np.random.default_rng(1)
    v = unit(rng.standard_normal((rows, D)))
    a = Adaptation(max_rows=max_rows)
    assert a.fit(np.arange(rows), v, labels) is active
    assert a.active is active
    x = unit(rng.standard_normal((3, D)))
    out = a.transform(x)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    if not active:
        assert np.allclose(out, x, atol=1e-6)  # inactive: the model's own similarity


def test_refit_is_due_after_enough_new_views_and_on_removal(store):
    index, ids, vectors, labels, query = store
    a = Adaptation(refit_every=3)
    a.fit(ids, vectors, labels)
    new = unit(np.random.default_rng(2).standard_normal((2, D)))
    assert a.added(np.array([900, 901]), new) is False  # 2 of 3
    assert np.allclose(a.vectors_of([900], None)[0], a.transform(new[:1])[0])
    assert a.added(np.array([902]), new[:1]) is True
    a.fit(ids, vectors, labels)  # refit: nothing pending
    assert a.removed([123456]) is False  # a row it never learned from
    assert a.removed([int(ids[0])]) is True  # one it learned from: refit at once
    # a removed row is no longer cached: asking for it goes to the fallback (the index)
    got = a.vectors_of([int(ids[0])], index.vectors_for)
    assert np.allclose(got[0], a.transform(vectors[:1])[0], atol=1e-5)


def test_rescore_sorts_best_first_and_keeps_missing_slots_last(store):
    index, ids, vectors, labels, query = store
    a = Adaptation()
    a.fit(ids, vectors, labels)
    nb = search(index, query[None], 200, a)  # more than the index holds: -1 slots
    row_ids, scores = nb.row(0)
    assert len(row_ids) == len(ids)
    assert np.all(np.diff(scores) <= 1e-7)
    expect = a.transform(vectors) @ a.transform(query[None])[0]
    assert np.allclose(scores, np.sort(expect)[::-1], atol=1e-5)


@pytest.mark.parametrize("kwargs", [dict(strength=0), dict(strength=-1), dict(refit_every=0),
                                    dict(max_rows=1), dict(rescore_k=0)])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        Adaptation(**kwargs)


def test_a_large_catalogue_is_fitted_on_a_sample_and_transformed_as_searched(monkeypatch):
    import kiosk.adapt as adapt

    monkeypatch.setattr(adapt, "FIT_ROWS", 40)
    rng = np.random.default_rng(3)
    n = 200  # 50 products x 4 rows: more than FIT_ROWS
    v = unit(rng.standard_normal((n, D)))
    labels = [f"P{i // 4}" for i in range(n)]
    a = Adaptation()
    assert a.fit(np.arange(n), v, labels)
    assert a._rows == {}  # nothing transformed up front
    got = a.vectors_of([5, 7], lambda ids: v[ids])
    assert np.allclose(got, a.transform(v[[5, 7]]), atol=1e-6)
    assert set(a._rows) == {5, 7}
    groups = {f"P{k}": list(range(4 * k, 4 * k + 4)) for k in range(50)}
    sample = adapt._sample(groups, 40)
    assert sum(map(len, sample.values())) <= 40
    assert all(len(g) >= 2 for g in sample.values())
    # undoing a row of the fit's sample refits at once, even if no search has met it
    fitted = sorted(a._fitted)
    assert 0 < len(fitted) <= 40
    never_met = next(i for i in fitted if i not in a._rows)
    assert a.removed([never_met]) is True
    outside = next(i for i in range(n) if i not in a._fitted)
    assert a.removed([outside]) is False  # (1 pending of 10)
    # the engine reads only the sample's vectors: fitting those is fitting the catalogue
    sub_ids, sub_labels = a.fit_sample(np.arange(n), labels)
    assert len(sub_ids) <= 40 and set(sub_ids.tolist()) == set(fitted)
    assert sub_labels == [labels[i] for i in sub_ids.tolist()]
    b = Adaptation()
    assert b.fit(sub_ids, v[sub_ids], sub_labels) and b._fitted == a._fitted
    np.testing.assert_allclose(b.transform(v), a.transform(v), atol=1e-5)
    small = np.arange(30)  # (30 rows: at most FIT_ROWS, every row)
    np.testing.assert_array_equal(a.fit_sample(small, labels[:30])[0], small)


@pytest.mark.parametrize("settings_adapt, settings_strength, adapt, strength, expected", [
    (True, 1.0, None, None, 1.0),  # the settings' own
    (True, 1.0, None, 3.0, 3.0),  # a strength given wins
    (False, 1.0, None, None, None),  # off in the settings
    (False, 1.0, True, None, 1.0),  # on by the caller, at the settings' strength
    (True, 2.0, False, None, None),  # off by the caller
])
def test_adaptation_from_settings(settings_adapt, settings_strength, adapt, strength, expected):
    from kiosk.settings import RecognitionSettings

    rec = RecognitionSettings(adapt=settings_adapt, adapt_strength=settings_strength)
    a = Adaptation.from_settings(rec, adapt=adapt, strength=strength)
    assert (None if a is None else a.strength) == expected
    default = Adaptation.from_settings()  # the settings' defaults
    assert default is not None and default.strength == RecognitionSettings().adapt_strength
