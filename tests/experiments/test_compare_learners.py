"""experiments/studies/compare_learners.py on a tiny stream: every learner gets a row, the numbers
are sane (finite rewards, the oracle's regret exactly 0, nobody beats the oracle in
expectation), the outputs are written, runs are reproducible, and without MABWiser the
VW rows still come out with a message naming the extra."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

import experiments.studies.compare_learners as cl

TOL = 1e-9
REFERENCES = {"oracle", "uniform", "rules", "no_offer"}
VW = {f"vw-{e}" for e in ("epsilon", "softmax", "bag", "cover", "squarecb", "regcb", "regcbopt")}
ALPHAS = (0.5, 1.0)
PEERS = {"mabwiser-linucb a=0.5", "mabwiser-linucb a=1", "mabwiser-lints"}


def run(out: Path, *extra: str, per_day: int = 200, seed: int = 3) -> dict[str, Any]:
    assert cl.main(["--days", "1", "--per-day", str(per_day), "--seed", str(seed), "--out", str(out),
                    "--json", str(out / "rows.json"), "--linucb-alphas", ",".join(map(str, ALPHAS)), *extra]) == 0
    return json.loads((out / "rows.json").read_text())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("compare")
    return out, run(out)


def test_every_learner_has_a_row(tiny: tuple[Path, dict[str, Any]]) -> None:
    _, res = tiny
    expected = VW | REFERENCES | (PEERS if cl.mabwiser() is not None else set())
    names = [r["learner"] for r in res["rows"]]
    assert sorted(names) == sorted(expected)
    assert all(r["interactions"] == 200 for r in res["rows"])
    assert res["unknown_features"] == []  # the MABWiser context covers every shared feature


def test_rows_sorted_by_reward_and_finite(tiny: tuple[Path, dict[str, Any]]) -> None:
    rows = tiny[1]["rows"]
    rewards = [r["reward"] for r in rows]
    assert rewards == sorted(rewards, reverse=True)
    for r in rows:
        for key in ("reward", "revenue", "expected_reward", "regret", "complaint_rate", "offer_rate"):
            assert math.isfinite(r[key]), (r["learner"], key)
        assert r["reward"] == pytest.approx(r["revenue"] - tiny[1]["complaint_penalty"] * r["complaints"])
        assert 0 <= r["complaint_rate"] <= r["offer_rate"] <= 1


def test_regret_to_the_oracle(tiny: tuple[Path, dict[str, Any]]) -> None:
    rows = {r["learner"]: r for r in tiny[1]["rows"]}
    assert rows["oracle"]["regret"] == pytest.approx(0.0, abs=TOL)
    for r in rows.values():
        assert r["regret"] >= -TOL, r["learner"]
        assert r["min_step_regret"] >= -TOL, r["learner"]  # not even one interaction beats the oracle
    # Offers worth making existed, so doing nothing has regret, and the oracle made them.
    assert rows["no_offer"]["regret"] > 0
    assert rows["oracle"]["expected_reward"] > 0 and rows["oracle"]["offer_rate"] > 0
    assert rows["no_offer"]["offer_rate"] == 0 and rows["no_offer"]["reward"] == 0


def test_outputs_written(tiny: tuple[Path, dict[str, Any]]) -> None:
    out, res = tiny
    md = (out / "compare_learners.md").read_text()
    assert "| learner |" in md
    for r in res["rows"]:
        assert f"| {r['learner']}{' (shipped)' if r.get('shipped') else ''}" in md
    png = (out / "compare_learners.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_same_arguments_same_table(tmp_path: Path, tiny: tuple[Path, dict[str, Any]]) -> None:
    again = run(tmp_path)

    def strip(res: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in res["rows"]]

    assert strip(again) == strip(tiny[1])


def test_without_mabwiser_runs_vw_rows_and_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cl, "mabwiser", lambda: None)
    res = run(tmp_path, per_day=50)
    names = {r["learner"] for r in res["rows"]}
    assert names == VW | REFERENCES
    err = capsys.readouterr().err
    assert "pip install '.[peers]'" in err
    assert any("peers" in n for n in res["notes"])


def test_the_shipped_policy_files_learner_is_marked_and_only_it(tiny: tuple[Path, dict[str, Any]]) -> None:
    rows = tiny[1]["rows"]
    shipped = [r["learner"] for r in rows if r.get("shipped")]
    shipped_explorer = cl.load_policy(cl.SHIPPED_POLICY).exploration.algorithm
    assert shipped == [f"vw-{shipped_explorer}"]
    assert tiny[1]["vw_args"] == " ".join(cl.shipped_vw_args())  # the default run is the shipped learner's


def test_a_policy_file_with_another_learner_marks_no_row_shipped(tmp_path: Path) -> None:
    policy = tmp_path / "old.yaml"
    policy.write_text("learner: {learning_rate: 0.1}\n")
    res = run(tmp_path, "--policy", str(policy), "--explorers", "regcbopt,epsilon", "--no-peers", per_day=50)
    assert not any(r.get("shipped") for r in res["rows"])
    assert {r["learner"] for r in res["rows"]} == {"vw-regcbopt", "vw-epsilon"} | REFERENCES


@pytest.mark.skipif(cl.mabwiser() is None, reason="needs the peers extra")
def test_linucb_runs_once_per_alpha_and_the_best_is_the_lowest_regret(tiny: tuple[Path, dict[str, Any]]) -> None:
    res = tiny[1]
    linucb = [r for r in res["rows"] if r["learner"].startswith("mabwiser-linucb")]
    assert sorted(r["alpha"] for r in linucb) == sorted(ALPHAS)
    best = min(linucb, key=lambda r: r["regret"])
    assert res["linucb_best_alpha"] == best["alpha"]
    v = res["verdict"]
    shipped = next(r for r in res["rows"] if r.get("shipped"))
    assert (v["linucb_regret"], v["shipped_regret"]) == (best["regret"], shipped["regret"])
    assert v["ahead"] == (shipped["regret"] <= best["regret"]
                          and shipped["complaint_rate"] <= best["complaint_rate"])


@pytest.mark.skipif(cl.mabwiser() is None, reason="needs the peers extra")
def test_several_seeds_give_a_table_each_and_a_verdict_per_seed(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert cl.main(["--days", "1", "--per-day", "40", "--seeds", "3,4", "--out", str(tmp_path), "--json",
                    str(tmp_path / "s.json"), "--linucb-alphas", "1", "--explorers", "squarecb"]) == 0
    res = json.loads((tmp_path / "s.json").read_text())
    assert [s["seed"] for s in res["seeds"]] == [3, 4] and [v["seed"] for v in res["verdicts"]] == [3, 4]
    assert (tmp_path / "compare_learners_seed3.md").is_file() and (tmp_path / "compare_learners_seed4.png").is_file()
    out = capsys.readouterr().out
    assert "Seed 3:" in out and "Seed 4:" in out and "| 3 | vw-squarecb |" in out and "| mean |" in out


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "7,x"], "--seeds"), (["--seed", "7", "--seeds", "7,11"], "--seed and --seeds"),
    (["--linucb-alphas", "0.5,-1"], "--linucb-alphas"), (["--explorers", "greedy"], "--explorers: greedy"),
])
def test_bad_options_are_named(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cl.parse_args(argv)
    assert message in capsys.readouterr().err
