from bandit.domain.outcomes import RewardConfig
from bandit.domain.outcomes import cost, reward, window_closed
from bandit.domain.outcomes import Outcome

CFG = RewardConfig(complaint_penalty=100, default_reward=-1, declined_reward=-2, window_hours=72, scale=100)
T = 1_000_000.0


def o(type_: str, dt_hours: float = 1, value: float | None = None, score: float | None = None) -> Outcome:
    return Outcome("e", type_, T + dt_hours * 3600, value, score)


def test_no_outcome_gives_default() -> None:
    assert reward([], T, 50, CFG) == -1


def test_accepted_without_value_uses_offer_margin() -> None:
    assert reward([o("accepted")], T, 50, CFG) == 50


def test_conversion_value_wins_over_acceptance() -> None:
    assert reward([o("accepted", value=10), o("converted", value=120), o("converted", value=30)], T, 50, CFG) == 150


def test_complaint_is_a_penalty_on_top() -> None:
    assert reward([o("accepted"), o("complaint")], T, 50, CFG) == -50
    assert reward([o("declined"), o("complaint")], T, 50, CFG) == -102


def test_late_outcomes_are_kept_but_not_learned() -> None:
    assert reward([o("accepted", dt_hours=73)], T, 50, CFG) == -1
    assert not window_closed(T, T + 71 * 3600, CFG) and window_closed(T, T + 72 * 3600, CFG)


def test_nps_and_reward_values() -> None:
    cfg = CFG.model_copy(update={"nps_weight": 2.0})
    assert reward([o("nps", score=9)], T, 0, cfg) == 8
    assert reward([o("reward", value=0.5), o("reward", value=0.25)], T, 0, cfg) == 0.75


def test_cost_is_scaled_negative_reward() -> None:
    assert cost(50, CFG) == -0.5 and str(cost(0, CFG)) == "0.0"
