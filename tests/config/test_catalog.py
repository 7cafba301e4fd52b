from pathlib import Path

import pytest

from bandit.config.catalog import NO_OFFER, parse_catalog
from bandit.config.loader import LiveConfig
from bandit.domain.errors import ConfigError
from bandit.config.policyfile import parse_policy
from conftest import REPO

GOOD_OFFER = """
  - id: ok
    title: Fine offer
    family: upgrade
    value: 10
    channels: [phone]
    templates: {phone: "Hello {{ customer.tier }}"}
"""


def test_example_catalog_loads_with_8_to_12_offers() -> None:
    cat = parse_catalog((REPO / "config/offers.yaml").read_text(), "offers.yaml")
    assert 8 <= len(cat.offers) <= 12
    assert NO_OFFER not in cat.offers
    assert len(cat.version) == 12


def test_every_problem_is_reported_with_file_offer_and_field() -> None:
    text = "offers:\n" + GOOD_OFFER + """
  - id: bad_value
    title: Negative
    family: upgrade
    value: -5
    channels: [phone, fax]
    templates: {phone: "x"}
  - id: no_template
    title: Missing template
    family: upgrade
    value: 1
    channels: [chat]
    templates: {phone: "x"}
  - id: bad_placeholder
    title: Typo
    family: upgrade
    value: 1
    channels: [phone]
    templates: {phone: "Hi {{ custmer.tier }}"}
  - id: ok
    title: Duplicate
    family: upgrade
    value: 1
    channels: [phone]
    templates: {phone: "x"}
  - id: no_offer
    title: Reserved
    family: upgrade
    value: 1
    channels: [phone]
    templates: {phone: "x"}
"""
    with pytest.raises(ConfigError) as info:
        parse_catalog(text, "offers.yaml")
    problems = info.value.problems
    joined = "\n".join(problems)
    assert "offers.yaml: offer 'bad_value': field 'value'" in joined
    assert "offers.yaml: offer 'bad_value': field 'channels.1'" in joined
    assert "offer 'no_template'" in joined and "no template for channel(s) ['chat']" in joined
    assert "offer 'bad_placeholder': field 'templates.phone[0]': unknown placeholder(s) ['custmer']" in joined
    assert "offer 'ok': field 'id': duplicate offer id" in joined
    assert "offer 'no_offer': field 'id'" in joined
    assert len(problems) >= 6


def test_yaml_syntax_error_names_the_file() -> None:
    with pytest.raises(ConfigError, match="offers.yaml: not valid YAML"):
        parse_catalog("offers: [\n", "offers.yaml")


def test_template_condition_shows_saving_only_above_5_percent() -> None:
    cat = parse_catalog((REPO / "config/offers.yaml").read_text())
    base = {"customer": {}, "interaction": {}, "channel": "email", "offer": {}}
    big = cat.render("pharmacy_savings_club", "email", {**base, "attrs": {"refill_price": 80.0, "drugstore_price": 100.0}})
    small = cat.render("pharmacy_savings_club", "email", {**base, "attrs": {"refill_price": 98.0, "drugstore_price": 100.0}})
    assert "You saved $20.00 (20%)" in big
    assert "saved" not in small and "savings club" in small


def test_invalid_catalog_never_replaces_a_valid_one(settings, tmp_path: Path) -> None:
    cat = tmp_path / "offers.yaml"
    cat.write_text("offers:\n" + GOOD_OFFER)
    settings = settings.model_copy(update={"catalog": cat})
    live = LiveConfig(settings)
    before = live.current
    cat.write_text("offers:\n  - id: broken\n")
    with pytest.raises(ConfigError):
        live.reload()
    assert live.current is before and "ok" in live.current.catalog.offers


def test_policy_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="policy.yaml: field 'guardrails.min_sentiment'"):
        parse_policy("guardrails: {min_sentiment: 3}", "policy.yaml")
    with pytest.raises(ConfigError, match="field 'guardrails.distres'"):
        parse_policy("guardrails: {distres: false}", "policy.yaml")


def test_policy_suspending_unknown_offer_is_an_error(settings, tmp_path: Path) -> None:
    pol = tmp_path / "policy.yaml"
    pol.write_text("guardrails: {suspended_offers: [nope]}")
    with pytest.raises(ConfigError, match="unknown offer id 'nope'"):
        LiveConfig(settings.model_copy(update={"policy": pol}))
