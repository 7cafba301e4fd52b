"""A bounded soak through the service: decisions at a steady rate from an open-loop Python
client (``experiments/bench/soak.py``'s ``FixedRateLoad``; the long run is that script). Asserted:
no errors, every answered decision logged, and the worker's memory flat (under 10% growth
from after the warm-up to the end). Latency is reported, never asserted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bandit.config.policyfile import PolicyFile
from bandit.decide.vw import VWModel
from conftest import CHANNEL_KEY, Served, record_figure, start_service, stop_service
from experiments.served import rss_kib
from experiments.bench.soak import FixedRateLoad, intervals, summarize

pytestmark = pytest.mark.slow

RATE, WARMUP, SECONDS, INTERVAL = 200, 5, 20, 10


@pytest.fixture(scope="module")
def soaked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Its own instance, serving a VW model (so each decision runs VW's predict)."""
    tmp = tmp_path_factory.mktemp("soak")
    VWModel(PolicyFile().vw_args(), "soak").save(tmp / "model.vw")
    s = start_service(tmp)
    yield s
    stop_service(s.proc)


def test_a_steady_rate_for_20_seconds_has_no_errors_and_flat_memory(soaked: Served) -> None:
    assert soaked.client().get("/readyz").json()["model"]["source"] == "file"
    worker = soaked.worker_pid()
    load = FixedRateLoad(soaked.url, CHANNEL_KEY, RATE)
    before = soaked.count_decisions()
    load.run(WARMUP)
    rss0 = rss_kib(worker)
    samples = load.run(SECONDS)
    rss1 = rss_kib(worker)
    logged = soaked.count_decisions() - before
    rows = [summarize(chunk, INTERVAL) for _, chunk in intervals(samples, INTERVAL, SECONDS // INTERVAL)]
    record_figure(
        f"soak (tests/service/test_soak.py): {RATE}/s for {SECONDS} s after a {WARMUP} s warm-up, open-loop Python client;"
        f" per {INTERVAL} s: " + ", ".join(f"{r['rps']:.0f}/s p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms"
                                      for r in rows)
        + f"; {sum(r['errors'] for r in rows)} errors; worker RSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB"
          f" ({(rss1 - rss0) / rss0:+.1%})")
    errors = [s for s in load.samples if not (s.status == 200 and s.logged)]
    assert errors == [], errors[:5]
    assert logged == len(load.samples) == RATE * (WARMUP + SECONDS)  # each answered decision logged, once
    assert rss1 < rss0 * 1.10, f"worker memory grew from {rss0} to {rss1} KiB"
