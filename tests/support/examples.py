"""How many examples a Hypothesis property tries, per test tier.

The full run (``make test``, CI; Hypothesis' default profile) tries each property as many times as its test
names. The unit tier (``make test-unit`` loads the ``unit`` profile) tries a tenth of that, at least 10, so the
fast loop stays under a minute. Both tiers run the same properties and assert the same things.
"""

from hypothesis import settings

UNIT_PROFILE = "unit"
_UNIT_SHARE = 10
_UNIT_MINIMUM = 10


def register_profiles() -> None:
    """Register the ``unit`` profile (``--hypothesis-profile unit``): properties that name no count try 10."""
    settings.register_profile(UNIT_PROFILE, max_examples=_UNIT_MINIMUM)


def examples(full: int) -> int:
    """``max_examples`` for a property: ``full`` in the full run, a tenth (at least 10) in the unit tier.

    Read when the test module is imported, after pytest's Hypothesis plugin has loaded the chosen profile.
    """
    if settings.get_current_profile_name() == UNIT_PROFILE:
        return max(_UNIT_MINIMUM, full // _UNIT_SHARE)
    return full
