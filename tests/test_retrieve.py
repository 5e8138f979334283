"""Vector index: real faiss HNSW, tombstone deletes, persistence and reconciliation, for
both storage kinds (float16, the default, and float32)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from kiosk.decide import Decider
from kiosk.retrieve import DEFAULT_KIND, KINDS, VectorIndex

# float16 storage: a cosine score is within about 1e-4 of the exact one (2e-4 on these 32-d
# vectors, whose components are larger than a 1792-d embedding's)
SCORE_TOL = {"fp16": 1e-3, "flat": 1e-5}


def unit(rng, n, d=32):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(params=KINDS)
def filled(request):
    rng = np.random.default_rng(0)
    vecs = unit(rng, 200)
    ids = np.arange(1000, 1200, dtype=np.int64)
    idx = VectorIndex(32, "m@1", kind=request.param)
    idx.add(ids, vecs)
    return idx, ids, vecs


def test_default_kind_is_half_precision():
    assert DEFAULT_KIND == "fp16" and VectorIndex(8, "m@1").kind == "fp16"
    with pytest.raises(ValueError):
        VectorIndex(8, "m@1", kind="pq")


def test_search_finds_itself(filled):
    idx, ids, vecs = filled
    nb = idx.search(vecs[:10], k=3)
    assert nb.ids.shape == (10, 3)
    assert (nb.ids[:, 0] == ids[:10]).all()
    assert np.allclose(nb.scores[:, 0], 1.0, atol=SCORE_TOL[idx.kind])
    assert (np.diff(nb.scores, axis=1) <= 1e-6).all()  # sorted best first


def test_scores_and_stored_vectors_match_the_exact_ones(filled):
    idx, ids, vecs = filled
    nb = idx.search(vecs[:20], k=5)
    exact = np.take_along_axis(vecs[:20] @ vecs.T, nb.ids - 1000, axis=1)
    np.testing.assert_allclose(nb.scores, exact, atol=SCORE_TOL[idx.kind])
    np.testing.assert_allclose(idx.vectors_for(ids[5:9]), vecs[5:9],
                               atol=SCORE_TOL[idx.kind])


def test_stored_vectors_are_the_index_own_in_any_order_and_an_unknown_id_is_refused(filled):
    idx, ids, vecs = filled
    rng = np.random.default_rng(5)
    more = np.arange(5000, 5040, dtype=np.int64)  # read once, then more added: re-read
    idx.vectors_for(ids[:3])
    idx.add(more[::-1], unit(rng, 40))
    idx.remove(ids[:2])  # tombstoned rows are still stored
    pick = rng.permutation(np.concatenate([ids, more]))[:90]
    got = idx.vectors_for(pick)
    want = np.stack([idx._index.reconstruct(int(i)) for i in pick])  # faiss's own decoding
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.float32 and idx.vectors_for([]).shape == (0, 32)
    with pytest.raises(KeyError, match="999999"):
        idx.vectors_for([int(ids[0]), 999999])
    np.testing.assert_array_equal(idx.vectors_for(pick), got)


def test_half_precision_holds_half_the_memory():
    rng = np.random.default_rng(3)
    vecs, ids = unit(rng, 500, d=256), np.arange(500, dtype=np.int64)
    size = {}
    for kind in KINDS:
        idx = VectorIndex(256, "m@1", kind=kind)
        idx.add(ids, vecs)
        size[kind] = idx.memory_bytes()
    assert size["flat"] >= 500 * 256 * 4
    assert size["fp16"] < 500 * 256 * 2 + (size["flat"] - 500 * 256 * 4) + 1


def test_remove_takes_effect_at_once_without_rebuild(filled):
    idx, ids, vecs = filled
    idx.remove(ids[:5])
    nb = idx.search(vecs[:5], k=4)
    assert not np.isin(nb.ids, ids[:5]).any()
    assert (nb.ids >= 0).all()  # still k results from the live rows
    assert idx.ntotal == 200 and idx.n_live == 195


def test_readding_a_tombstoned_id_revives_it(filled):
    idx, ids, vecs = filled
    idx.remove(ids[:1])
    idx.add(ids[:1], vecs[:1])
    assert idx.search(vecs[:1], k=1).ids[0, 0] == ids[0]
    assert idx.ntotal == 200


def test_compaction_drops_dead_vectors(filled, monkeypatch):
    import kiosk.retrieve as retrieve

    monkeypatch.setattr(retrieve, "SYNC_CHUNK", 30)  # the live vectors move in chunks
    idx, ids, vecs = filled
    idx.remove(ids[:100])
    assert idx.needs_compaction
    fresh = idx.compacted()
    assert fresh.ntotal == 100 and fresh.n_dead == 0 and fresh.kind == idx.kind
    assert sorted(fresh.ids().tolist()) == ids[100:].tolist()
    nb = fresh.search(vecs[100:110], k=1)
    assert (nb.ids[:, 0] == ids[100:110]).all()


@pytest.mark.parametrize("bad", [np.zeros((3, 31), np.float32), np.zeros((3,), np.float32)])
def test_wrong_dimension_is_refused_and_changes_nothing(filled, bad):
    idx, *_ = filled
    with pytest.raises(ValueError):
        idx.add(np.arange(3), bad)
    assert idx.ntotal == 200


def test_empty_index_returns_no_neighbours():
    idx = VectorIndex(8, "m@1")
    nb = idx.search(np.ones((2, 8), np.float32), k=3)
    assert (nb.ids == -1).all()


def test_save_load_round_trip(tmp_path, filled):
    idx, ids, vecs = filled
    path = tmp_path / "gallery.faiss"
    idx.save(path)
    back = VectorIndex.load(path)
    assert back.model_id == "m@1" and back.ntotal == 200 and back.kind == idx.kind
    assert (back.search(vecs[:5], k=1).ids[:, 0] == ids[:5]).all()
    assert not list(tmp_path.glob("*.tmp"))
    np.testing.assert_array_equal(back.vectors_for(ids[:7]), idx.vectors_for(ids[:7]))


def _sync(path, ids, vecs, model="m@1", dim=32, kind=DEFAULT_KIND, asked=None):
    table = dict(zip(ids.tolist(), vecs))

    def fetch(q):
        if asked is not None:
            asked.append(len(q))
        return np.stack([table[i] for i in q])

    return VectorIndex.sync(path, model, dim, ids, fetch, kind=kind)


def test_sync_rebuilds_an_index_of_another_kind(tmp_path, filled):
    idx, ids, vecs = filled
    path = tmp_path / "g.faiss"
    idx.save(path)
    other = next(k for k in KINDS if k != idx.kind)
    got, action = _sync(path, ids, vecs, kind=other)
    assert action.startswith("rebuilt") and got.kind == other and got.n_live == 200
    got.save(path)
    got, action = _sync(path, ids, vecs, kind=other)
    assert action == "loaded" and got.kind == other


def test_an_index_saved_before_kinds_existed_loads_as_float32(tmp_path):
    rng = np.random.default_rng(2)
    vecs, ids = unit(rng, 50), np.arange(50, dtype=np.int64)
    old = VectorIndex(32, "m@1", kind="flat")
    old.add(ids, vecs)
    path = tmp_path / "g.faiss"
    old.save(path)
    header = path.with_name("g.faiss.json")
    meta = json.loads(header.read_text())
    del meta["kind"]
    meta["format"] = 1
    header.write_text(json.dumps(meta))
    assert VectorIndex.load(path).kind == "flat"
    got, action = _sync(path, ids, vecs)  # wanted: the default kind
    assert action.startswith("rebuilt") and got.kind == DEFAULT_KIND and got.n_live == 50


def test_sync_asks_for_the_stored_vectors_a_chunk_at_a_time(tmp_path, monkeypatch):
    import kiosk.retrieve as retrieve

    monkeypatch.setattr(retrieve, "SYNC_CHUNK", 40)
    rng = np.random.default_rng(4)
    vecs, ids = unit(rng, 100), np.arange(100, dtype=np.int64)
    asked: list[int] = []
    got, action = _sync(tmp_path / "g.faiss", ids, vecs, asked=asked)
    assert action.startswith("rebuilt") and got.n_live == 100
    assert asked == [40, 40, 20]


def test_sync_repairs_and_rebuilds(tmp_path, filled):
    idx, ids, vecs = filled
    path = tmp_path / "g.faiss"
    idx.save(path)
    # catalogue agrees: plain load
    got, action = _sync(path, ids, vecs, kind=idx.kind)
    assert action == "loaded" and got.n_live == 200
    # catalogue lost 10 rows and gained 3 the index never saw (e.g. a crash before save)
    rng = np.random.default_rng(5)
    new_ids = np.array([5000, 5001, 5002], np.int64)
    new_vecs = unit(rng, 3)
    live = np.concatenate([ids[10:], new_ids])
    got, action = _sync(path, live, np.concatenate([vecs[10:], new_vecs]), kind=idx.kind)
    assert action == "repaired"
    assert got.n_live == 193
    assert got.search(new_vecs, k=1).ids[:, 0].tolist() == new_ids.tolist()
    assert not np.isin(got.search(vecs[:10], k=5).ids, ids[:10]).any()
    # another model: rebuilt from stored vectors
    got, action = _sync(path, ids, vecs, model="other@2", kind=idx.kind)
    assert action.startswith("rebuilt") and got.model_id == "other@2"
    # corrupt file: rebuilt, never an exception
    path.write_bytes(b"garbage")
    got, action = _sync(path, ids, vecs, kind=idx.kind)
    assert action.startswith("rebuilt") and got.n_live == 200
    # no file at all
    got, action = _sync(tmp_path / "missing.faiss", ids, vecs, kind=idx.kind)
    assert action.startswith("rebuilt") and got.n_live == 200


DECIDE_CASES = [
    # ids, scores, expected sku, unknown
    ([1, 2, 3], [0.9, 0.8, 0.7], "A", False),  # A has 2 votes
    ([3, 1, 2], [0.9, 0.88, 0.88], "A", False),  # two near-equal A views beat one B
    ([3, 1, 2], [0.9, 0.6, 0.6], "B", False),  # a clearly better B match wins
    ([3, 4, 5], [0.9, 0.2, 0.1], "B", False),
    ([1, 2, 3], [0.3, 0.2, 0.1], None, True),  # below threshold: unknown, candidates kept
    ([-1, -1, -1], [0, 0, 0], None, True),
    ([99, 1, 2], [0.95, 0.9, 0.85], "A", False),  # 99 deleted meanwhile: ignored
]


@pytest.mark.parametrize("ids,scores,sku,unknown", DECIDE_CASES)
def test_decision_table(ids, scores, sku, unknown):
    sku_of = {1: "A", 2: "A", 3: "B", 4: "C", 5: "C"}
    d = Decider(k=5, threshold=0.5).decide_one(np.array(ids), np.array(scores), sku_of)
    assert d.sku == sku and d.unknown == unknown
    if unknown and ids[0] >= 0:
        assert d.candidates and d.candidates[0].sku == "A"


def test_decide_unknown_reports_best_score():
    d = Decider(threshold=0.8).decide_one(np.array([1]), np.array([0.6]), {1: "A"})
    assert d.unknown and d.score == pytest.approx(0.6) and d.best.sku == "A"


def test_reserving_room_keeps_what_is_stored(filled):
    idx, ids, vecs = filled
    before = idx.vectors_for(ids[:20])
    idx.reserve(300)
    assert idx.ntotal == 200
    np.testing.assert_array_equal(idx.vectors_for(ids[:20]), before)
    more = unit(np.random.default_rng(9), 300)
    idx.add(np.arange(5000, 5300, dtype=np.int64), more)
    assert idx.ntotal == 500
    assert (idx.search(more[:10], k=1).ids[:, 0] == np.arange(5000, 5010)).all()
    assert (idx.search(vecs[:10], k=1).ids[:, 0] == ids[:10]).all()
