"""Pricing: genai-prices for hosted models, config overrides, free local servers, None for the unknown."""

from __future__ import annotations

import logging

import pytest

from labmind.llm import PriceOverride, Pricer, Usage, parse_spec
from labmind.llm.pricing import is_local_url

MILLION = 1_000_000


def test_a_known_anthropic_model_costs_its_list_price() -> None:
    # claude-sonnet-4-6: $3 input, $15 output, $0.30 cache read, $3.75 cache write per million tokens.
    pricer = Pricer()
    spec = parse_spec("anthropic:claude-sonnet-4-6")
    assert pricer.cost(spec, Usage(input_tokens=MILLION // 10, output_tokens=MILLION // 10)) == pytest.approx(1.8)
    cached = Usage(input_tokens=100_000, output_tokens=0, cache_read_tokens=60_000, cache_write_tokens=20_000)
    assert pricer.cost(spec, cached) == pytest.approx((20_000 * 3 + 60_000 * 0.3 + 20_000 * 3.75) / MILLION)


def test_the_reported_snapshot_name_is_priced_too() -> None:
    spec = parse_spec("openai:gpt-5")
    usage = Usage(input_tokens=MILLION, output_tokens=MILLION, cache_read_tokens=MILLION // 2)
    # gpt-5: $1.25 input, $0.125 cached input, $10 output.
    assert Pricer().cost(spec, usage, "gpt-5-2025-08-07") == pytest.approx(0.625 + 0.0625 + 10)


def test_an_override_wins_and_prices_cache_tokens_at_input_unless_told() -> None:
    pricer = Pricer(
        {"claude-sonnet-4-6": PriceOverride(input_per_mtok=1.0, output_per_mtok=2.0, cache_read_per_mtok=0.5)}
    )
    usage = Usage(input_tokens=MILLION, output_tokens=MILLION, cache_read_tokens=400_000, cache_write_tokens=100_000)
    expected = (500_000 * 1.0 + 400_000 * 0.5 + 100_000 * 1.0 + MILLION * 2.0) / MILLION
    assert pricer.cost(parse_spec("anthropic:claude-sonnet-4-6"), usage) == pytest.approx(expected)


def test_local_servers_are_free_unless_priced() -> None:
    usage = Usage(input_tokens=MILLION, output_tokens=MILLION)
    local = parse_spec("openai-compatible:smollm2@http://127.0.0.1:8080/v1")
    assert Pricer().cost(local, usage) == 0.0
    priced = Pricer({"smollm2": PriceOverride(input_per_mtok=0.1, output_per_mtok=0.2)})
    assert priced.cost(local, usage) == pytest.approx(0.3)


def test_a_hosted_model_without_a_price_is_none_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    pricer = Pricer()
    spec = parse_spec("openai-compatible:gizmo-7b@https://inference.example.com/v1")
    with caplog.at_level(logging.WARNING):
        assert pricer.cost(spec, Usage(input_tokens=10, output_tokens=10)) is None
        assert pricer.cost(spec, Usage(input_tokens=10, output_tokens=10)) is None
    warnings = [r.getMessage() for r in caplog.records if "no known price" in r.getMessage()]
    assert len(warnings) == 1
    assert '[prices."gizmo-7b"]' in warnings[0]
    assert Pricer().cost(parse_spec("anthropic:claude-imaginary-9"), Usage(input_tokens=1)) is None


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8000/v1", True),
        ("http://localhost:11434/v1", True),
        ("http://[::1]:8000/v1", True),
        ("http://10.0.3.7:8000/v1", True),
        ("http://192.168.1.20/v1", True),
        ("http://gpu-node-3:8000/v1", True),
        ("http://box.local:8000/v1", True),
        ("https://openrouter.ai/api/v1", False),
        ("https://api.deepseek.com/v1", False),
        ("http://8.8.8.8/v1", False),
    ],
)
def test_which_servers_count_as_local(url: str, local: bool) -> None:
    assert is_local_url(url) is local
