"""The sidebar's picks in the URL query: what a link asks for is read back the same, and what is not valid is left out."""

from datetime import date

from dashboards.controls import CUSTOM, RANGE_SLUGS, from_query, to_query


def test_picks_round_trip_through_the_query():
    for label in RANGE_SLUGS.values():
        first, last = date(2026, 12, 1), date(2026, 12, 3)
        query = to_query("tenant-03", label, first, last)
        assert query["tenant"] == "tenant-03" and RANGE_SLUGS[query["range"]] == label
        back = from_query(query)
        assert back["range"] == label and back["tenant"] == "tenant-03"
        if label == CUSTOM:
            assert (query["from"], query["to"]) == ("2026-12-01", "2026-12-03")
            assert (back["range_from"], back["range_to"]) == (first, last)
    assert to_query("", "Last 6 hours") == {"range": "6h"}  # all tenants: no tenant parameter


def test_what_a_link_cannot_mean_is_ignored():
    assert from_query({"range": "3 fortnights"}) == {}
    assert from_query({"range": "custom", "from": "yesterday", "to": "2026-12-03"}) == {}
    assert from_query({"range": "custom", "from": "2026-12-01"}) == {}
    assert from_query({"tenant": ""}) == {}
    assert from_query({"tenant": "tenant-01", "range": "7d"}) == {"tenant": "tenant-01", "range": "Last 7 days"}
