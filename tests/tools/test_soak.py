"""``kiosk bench --soak``: a short run has the whole report and really checked out baskets.
(Not a timing test: only the report's shape and that the pipeline did work.)"""
from __future__ import annotations

import pytest

from kiosk import cli
from kiosk.tools.soak import format_report, proc_sample, run_soak, summarize


def test_short_soak_reports_growth_and_counts(tmp_path, copy_demo_db, embedder):
    db = copy_demo_db(tmp_path / "store")
    r = run_soak(10 / 60, embedder=embedder, db=db)
    for key in ("duration_s", "warmup_s", "samples", "frames_processed", "recognitions",
                "transactions", "transactions_stored", "baskets", "pass", "verdict", "trace"):
        assert key in r, key
    for key in ("rss_mb", "threads", "fds"):
        assert set(r[key]) == {"start", "end", "max", "growth_pct", "pass"}
        assert r[key]["start"] > 0 and r[key]["max"] >= r[key]["end"]
    assert r["frames_processed"] > 0 and r["recognitions"] > 0
    # every recognition was one picture through the kiosk's one path (kiosk.pipeline)
    assert r["pipeline_frames"] == r["recognitions"]
    assert r["transactions"] > 0 and r["transactions_stored"] == r["transactions"]
    assert r["samples"] >= 10 and r["verdict"] in ("PASS", "FAIL")
    assert r["camera_statuses"][0] == "live"
    assert "frames processed" in format_report(r)


def test_proc_sample_and_summary():
    s = proc_sample()
    assert s["rss_mb"] > 0 and s["threads"] >= 1 and s["fds"] >= 3
    samples = [{"t": t, "rss_mb": 100 + (t if t >= 5 else 50), "threads": 8, "fds": 10}
               for t in range(11)]
    m = summarize(samples, warmup_s=5)
    assert m["rss_mb"]["start"] == 106 and m["rss_mb"]["end"] == 109  # medians of three
    assert m["rss_mb"]["max"] == 110 and m["rss_mb"]["pass"]  # +2.8 %
    samples[-1]["fds"] = samples[-2]["fds"] = 20
    assert not summarize(samples, warmup_s=5)["fds"]["pass"]


@pytest.mark.parametrize("minutes", ["0", "-1"])
def test_soak_refuses_a_non_positive_duration(minutes, capsys):
    assert cli.main(["bench", "--soak", minutes]) == 2
    assert "positive number of minutes" in capsys.readouterr().err


def test_soak_duration_must_be_a_number(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--soak", "abc"])


def test_short_gui_soak_runs_the_real_window(qapp, tmp_path, copy_demo_db, embedder):
    pytest.importorskip("pytestqt")
    from kiosk.ui.soak import run_gui_soak

    db = copy_demo_db(tmp_path / "store")
    r = run_gui_soak(10 / 60, embedder=embedder, db=db)
    assert r["mode"] == "gui" and r["frames_processed"] > 0 and r["recognitions"] > 0
    assert r["dialogs_alive_at_end"] <= 1  # at most the receipt of a sale just made
    for key in ("rss_mb", "threads", "fds"):
        assert set(r[key]) == {"start", "end", "max", "growth_pct", "pass"}
