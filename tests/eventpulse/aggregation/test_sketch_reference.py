"""The columnar sketch is DDSketch: same buckets and answers as Datadog's reference `ddsketch` package.

`eventpulse/aggregation/sketch.py` buckets whole micro-batches with numpy instead of adding values
one by one to `ddsketch` objects (for speed); this pins it to the library's logarithmic mapping.
"""

import numpy as np
from ddsketch.mapping import LogarithmicMapping

from eventpulse.aggregation.sketch import GAMMA, RELATIVE_ACCURACY, bucket_value, buckets


def test_buckets_and_representatives_match_the_reference_mapping() -> None:
    mapping = LogarithmicMapping(RELATIVE_ACCURACY)
    assert mapping.gamma == GAMMA
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.lognormal(3.0, 1.5, 20_000), rng.uniform(0.001, 1.0, 2_000), [1.0, 2.0, 1e6]])
    keys = buckets(values).tolist()
    expected = [mapping.key(v) for v in values]
    mismatches = [(v, b, e) for v, b, e in zip(values, keys, expected, strict=True) if b != e]
    # Float rounding may put a value lying exactly on a bucket boundary one bucket over; never more.
    assert len(mismatches) <= len(values) // 10_000 and all(abs(b - e) == 1 for _, b, e in mismatches)
    for key in set(expected[:2000]):
        assert abs(bucket_value(key) - mapping.value(key)) <= 1e-9 * mapping.value(key)


def test_answers_are_within_the_stated_relative_error() -> None:
    rng = np.random.default_rng(11)
    values = rng.lognormal(3.5, 1.0, 10_000)
    for value, bucket in zip(values, buckets(values).tolist(), strict=True):
        assert abs(bucket_value(bucket) - value) <= RELATIVE_ACCURACY * value * (1 + 1e-9)
