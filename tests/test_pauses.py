"""Pauses and contention on the till's path: start-up's objects are set aside from the cyclic
garbage collector while later garbage is still collected (kiosk.runtime.pauses), and numpy's
BLAS keeps to one thread beside Paddle's (kiosk/__init__.py).  Each in a child interpreter:
freezing the test process's own objects would change every test after this one, and the BLAS
threads are chosen when numpy is first imported."""
from __future__ import annotations

import json
import subprocess
import sys

CHILD = r'''
import gc, json, weakref
from kiosk.runtime.pauses import after_start

kept = [[i] for i in range(50000)]  # what start-up made and keeps (lists: tracked)
frozen = after_start()

class Node:
    pass

a, b = Node(), Node()
a.other, b.other = b, a  # a reference cycle made after start-up, then dropped
gone = weakref.ref(a)
del a, b
gc.collect()
print(json.dumps({"frozen": frozen, "permanent": gc.get_freeze_count(),
                  "walked": len(gc.get_objects()), "cycle_collected": gone() is None,
                  "kept": len(kept)}))
'''


def test_start_up_objects_are_set_aside_and_later_garbage_is_still_collected():
    run = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["frozen"] == out["permanent"] >= 50000
    # a full collection now walks only what was made since start-up, not its 50,000 objects
    assert out["walked"] < 5000
    assert out["cycle_collected"] and out["kept"] == 50000


BLAS = r'''
import json, kiosk, numpy, threadpoolctl
print(json.dumps({i["internal_api"]: i["num_threads"] for i in threadpoolctl.threadpool_info()
                  if i["user_api"] == "blas"}))
'''


def test_numpy_blas_runs_on_one_thread_beside_paddle_unless_the_environment_says_otherwise():
    import os

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    for given, want in ((None, 1), ("2", 2)):
        if given is not None:
            env["OPENBLAS_NUM_THREADS"] = given
        run = subprocess.run([sys.executable, "-c", BLAS], capture_output=True, text=True,
                             env=env, timeout=120)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout) == {"openblas": want}
