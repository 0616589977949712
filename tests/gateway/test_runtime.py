"""Process tuning applied by a serving gateway: the garbage collector's thresholds and frozen heap."""

import gc

from gateway.runtime import tune_gc


def test_tune_gc_raises_the_young_threshold_and_freezes_the_startup_heap():
    before = gc.get_threshold()
    try:
        tune_gc(12_345, freeze=True)
        assert gc.get_threshold() == (12_345, before[1], before[2])
        assert gc.get_freeze_count() > 0
        tune_gc(0, freeze=False)  # 0 keeps what is set
        assert gc.get_threshold()[0] == 12_345
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
