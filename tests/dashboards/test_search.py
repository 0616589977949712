"""Event search over the pipeline's raw events: words (text index), id, user, type; pages."""

from dashboards import formatting as fmt
from tests.dashboards.apptest import open_page


def search(at, **fields):
    for key, value in fields.items():
        widget = at.radio(key=key) if key == "q_mode" else at.selectbox(key=key) if key == "q_type" else None
        if widget is not None:
            widget.set_value(value)
        else:
            at.text_input(key=key).set_value(value)
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def caption_count(at) -> str:
    return next(c.value for c in at.caption if "matching events" in c.value).split(" matching")[0]


def test_search_by_words_uses_the_text_index_and_pages(dashboard_env, sql):
    at = search(open_page("search"), q_text="scroll u00003")
    (expected,) = sql("SELECT count() FROM events FINAL WHERE hasAllTokens(data, ['scroll', 'u00003'])")[0]
    assert 50 < expected < 10_000
    assert caption_count(at) == fmt.count(expected)
    page = at.dataframe[0].value
    assert len(page) == 50 and all("scroll" in d and "u00003" in d for d in page["data"])
    assert list(page["timestamp"]) == sorted(page["timestamp"], reverse=True)
    # The last page holds the remainder.
    pager = at.get("pagination")[0]
    assert pager.num_pages == -(-expected // 50)
    pager.set_value(pager.num_pages).run()
    assert len(at.dataframe[0].value) == expected - 50 * (pager.num_pages - 1)
    # The query reads only granules the text index selects.
    plan = "\n".join(
        r[0] for r in sql("EXPLAIN indexes = 1 SELECT id FROM events WHERE hasAllTokens(data, ['scroll', 'u00003'])")
    )
    assert "events_data_text" in plan


def test_search_by_id_user_and_type(dashboard_env, sql):
    event_id, user, event_type = sql("SELECT id, user_id, type FROM events FINAL ORDER BY timestamp LIMIT 1 OFFSET 77")[
        0
    ]
    at = search(open_page("search"), q_id=event_id)
    assert caption_count(at) == "1" and list(at.dataframe[0].value["id"]) == [event_id]
    at = search(open_page("search"), q_user=user, q_type=event_type)
    (expected,) = sql(
        "SELECT count() FROM events FINAL WHERE user_id = {u:String} AND type = {t:String}", u=user, t=event_type
    )[0]
    assert caption_count(at) == fmt.count(expected)
    assert set(at.dataframe[0].value["user_id"]) == {user}


def test_substring_search_and_no_match(dashboard_env, sql):
    at = search(open_page("search"), q_text='"action":"share"', q_mode="substring")
    (expected,) = sql(
        """SELECT count() FROM events FINAL WHERE positionCaseInsensitive(data, '"action":"share"') > 0"""
    )[0]
    assert caption_count(at) == fmt.count(min(expected, 10_000)) + ("+" if expected >= 10_000 else "")
    at = search(open_page("search"), q_text="nosuchtokenanywhere", q_mode="words (indexed)")
    assert any("No event matches" in i.value for i in at.info)
