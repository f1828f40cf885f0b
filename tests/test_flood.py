"""One hostile client floods a stack run as the Procfile runs it, behind one
trusted proxy, while an honest newcomer from another address starts a 0.5 s task."""

from __future__ import annotations

from bench.flood import flood, show
from progressbar.errors import CODES

# The bounds the README states for a 10 s flood from one address.
NEWCOMER_SECONDS = 5.0
REDIS_PEAK_MB = 32.0
WEB_RSS_PEAK_MB = 200.0


def test_a_flood_from_one_address_starves_nobody_and_leaves_the_service_as_it_was() -> None:
    result = flood(10, {})
    show(result)  # the figures, in the test's output

    # Everything the flooder sent was answered: accepted, or refused with a code.
    answers = {
        what.removeprefix("connection refused: ")
        for counts in result["counts"].values()
        for what in counts
    }
    assert answers <= {"ok", *CODES}, result["counts"]
    # Starts are limited per address (30 a minute; a group costs its parts):
    # no cookie-less client, no Socket.IO reconnection, mints a new allowance.
    assert result["accepted"] <= 30, result["counts"]
    assert "ok" not in result["counts"]["http, hidden kind"], result["counts"]

    newcomer = result["newcomer_s"]
    assert newcomer["during"] is not None and newcomer["during"] < NEWCOMER_SECONDS, newcomer
    assert newcomer["after"] is not None and newcomer["after"] < NEWCOMER_SECONDS, newcomer
    assert result["redis_mb"]["peak"] < REDIS_PEAK_MB, result["redis_mb"]
    assert result["web_rss_mb"]["peak"] < WEB_RSS_PEAK_MB, result["web_rss_mb"]
