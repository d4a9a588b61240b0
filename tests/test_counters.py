from datetime import datetime

from revlens.ingest.loader import Counters


def test_counts_given_back_merge_with_newer_ones() -> None:
    counters = Counters()
    counters.bump("we_1", "rejected", datetime(2024, 1, 1))
    deltas, last = counters.take()
    counters.bump("we_1", "rejected", datetime(2024, 1, 2))
    counters.bump("we_1", "ignored")
    counters.give_back(deltas, last)  # the store refused the first batch
    assert counters.pending() == {"we_1": {"rejected": 2, "ignored": 1}}
    _, kept = counters.take()
    assert kept == {"we_1": datetime(2024, 1, 2)}
