"""The rules heuristic's tone bar is one named constant, and every default for it is that one."""

from __future__ import annotations

import inspect

from bandit.config.policyfile import RULES_MIN_SENTIMENT, ControlGroup, load_policy
from bandit.learn.evaluation import baselines, rules_policy
from conftest import REPO


def test_every_default_of_the_rules_bar_is_the_constant() -> None:
    from flows.tune import evaluate_baselines

    assert RULES_MIN_SENTIMENT == 0.3
    assert ControlGroup().rules_min_sentiment == RULES_MIN_SENTIMENT
    assert load_policy(REPO / "config/policy.yaml").control.rules_min_sentiment == RULES_MIN_SENTIMENT
    defaults = {f.__qualname__: next(p.default for n, p in inspect.signature(f).parameters.items() if "sentiment" in n)
                for f in (rules_policy, baselines, evaluate_baselines)}
    assert defaults == dict.fromkeys(("rules_policy", "baselines", "evaluate_baselines"), RULES_MIN_SENTIMENT)
