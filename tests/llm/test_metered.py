"""Metered: the resume cache, budget, limiter, pricing and call log around any client."""

from __future__ import annotations

import json
import threading

import pytest

from labmind.llm import (
    Budget,
    CallContext,
    Completion,
    LLMBudgetExceeded,
    LLMError,
    MemoryCallLog,
    Message,
    Metered,
    RateLimiter,
    ToolCall,
    ToolSpec,
    Usage,
)
from labmind.llm.calllog import TEXT_LIMIT
from labmind.llm.metered import render_prompt, truncate

from .fakes import FakeClient, answer

ASK = [Message("user", "Propose one idea for train.py")]
CTX = CallContext(role="ideate", experiment_id=7, line_id=2)
# claude-sonnet-4-6 at $3 / $15 per million tokens
COST = (1000 * 3 + 200 * 15) / 1e6


def test_an_ok_call_is_priced_charged_and_recorded() -> None:
    log = MemoryCallLog()
    budget = Budget(log=log)
    llm = Metered(FakeClient(answer("use warmup")), budget=budget, log=log)
    out = llm.complete(ASK, system="You are careful.", context=CTX)

    assert out.text == "use warmup"
    assert out.cost_usd == pytest.approx(COST)
    assert out.cached is False
    assert budget.spent_usd == pytest.approx(COST)
    assert budget.tokens_of(7) == 1200
    [rec] = log.records
    assert (rec.status, rec.spec, rec.model, rec.role, rec.experiment_id, rec.line_id) == (
        "ok",
        "anthropic:claude-sonnet-4-6",
        "claude-sonnet-4-6",
        "ideate",
        7,
        2,
    )
    assert (rec.input_tokens, rec.output_tokens, rec.cost_usd) == (1000, 200, pytest.approx(COST))
    assert rec.prompt == "[system]\nYou are careful.\n\n[user]\nPropose one idea for train.py"
    assert rec.response == "use warmup"
    assert rec.completion is not None and rec.completion["text"] == "use warmup"
    assert len(rec.cache_key) == 64 and rec.latency_s >= 0


def test_a_resumed_lab_gets_its_answers_from_the_log_without_buying_them() -> None:
    log = MemoryCallLog()
    first = FakeClient(answer("idea A"), answer("idea B"))
    before = Metered(first, log=log)
    assert [before.complete(ASK, context=CTX).text for _ in range(2)] == ["idea A", "idea B"]
    spent = log.spent_usd()

    # A new process (resume) with the same log: the same calls in the same order are served from it.
    again = FakeClient(answer("never bought"))
    budget = Budget(usd_cap=10.0, log=log)
    after = Metered(again, budget=budget, log=log)
    replay = [after.complete(ASK, context=CTX) for _ in range(2)]

    assert [c.text for c in replay] == ["idea A", "idea B"]
    assert all(c.cached and c.cost_usd == 0.0 for c in replay)
    assert again.calls == []
    assert log.spent_usd() == pytest.approx(spent)
    assert budget.spent_usd == pytest.approx(spent)
    cached = [r for r in log.records if r.status == "cached"]
    assert len(cached) == 2 and all(r.input_tokens == 0 and r.cost_usd == 0.0 for r in cached)
    # A third identical call was never bought before, so it is bought now.
    assert after.complete(ASK, context=CTX).text == "never bought"


def test_the_cache_key_depends_on_role_experiment_and_request() -> None:
    log = MemoryCallLog()
    Metered(FakeClient(answer("x")), log=log).complete(ASK, context=CTX)
    client = FakeClient(answer("y"))
    llm = Metered(client, log=log)
    llm.complete(ASK, context=CallContext(role="reflect", experiment_id=7))
    llm.complete(ASK, context=CallContext(role="ideate", experiment_id=8))
    llm.complete(ASK, context=CTX, temperature=0.5)
    llm.complete(ASK, context=CTX, tools=[ToolSpec("t", "d", {"type": "object"})])
    assert len(client.calls) == 4
    assert len({r.cache_key for r in log.records}) == 5


def test_a_failed_call_is_recorded_and_its_retry_takes_the_same_key() -> None:
    log = MemoryCallLog()
    client = FakeClient(LLMError("anthropic answered HTTP 529: Overloaded", status=529), answer("second try"))
    llm = Metered(client, log=log)
    with pytest.raises(LLMError, match="Overloaded"):
        llm.complete(ASK, context=CTX)
    assert llm.complete(ASK, context=CTX).text == "second try"

    failed, ok = log.records
    assert failed.status == "error"
    assert failed.error == "LLMError: anthropic answered HTTP 529: Overloaded"
    assert (failed.input_tokens, failed.cost_usd, failed.completion) == (0, None, None)
    assert failed.prompt.startswith("[user]")
    assert ok.status == "ok" and ok.cache_key == failed.cache_key
    # On resume the retried answer is found under the first occurrence.
    assert Metered(FakeClient(answer("bought")), log=log).complete(ASK, context=CTX).text == "second try"


def test_a_dollar_cap_stops_calls_before_they_are_made() -> None:
    log = MemoryCallLog()
    client = FakeClient(answer())
    llm = Metered(client, budget=Budget(usd_cap=COST * 1.5, log=log), log=log)
    llm.complete(ASK, context=CTX)
    llm.complete([Message("user", "another")], context=CTX)  # under the cap when it started
    with pytest.raises(LLMBudgetExceeded, match=r"budget of \$0\.01 is used up"):
        llm.complete([Message("user", "a third")], context=CTX)
    assert len(client.calls) == 2
    assert [r.status for r in log.records] == ["ok", "ok"]
    # With a raised cap the refused request is bought under the key it would have had.
    llm.budget.usd_cap = 1.0
    llm.complete([Message("user", "a third")], context=CTX)
    fresh = Metered(FakeClient(answer("never bought")), log=log)
    assert fresh.complete([Message("user", "a third")], context=CTX).cached


def test_a_token_cap_stops_one_experiment_only() -> None:
    log = MemoryCallLog()
    client = FakeClient(answer())
    llm = Metered(client, budget=Budget(tokens_per_experiment=1500, log=log), log=log)
    llm.complete(ASK, context=CTX)
    llm.complete([Message("user", "more")], context=CTX)
    with pytest.raises(LLMBudgetExceeded, match="experiment 7 reached its cap of 1,500 LLM tokens"):
        llm.complete([Message("user", "even more")], context=CTX)
    llm.complete(ASK, context=CallContext(role="ideate", experiment_id=8))
    assert len(client.calls) == 3


def test_an_unpriced_model_costs_none_but_counts_tokens(caplog: pytest.LogCaptureFixture) -> None:
    log = MemoryCallLog()
    budget = Budget(usd_cap=1.0, tokens_per_experiment=10_000, log=log)
    client = FakeClient(answer(model="gizmo-1"), spec="openai-compatible:gizmo-1@https://llm.example.com/v1")
    llm = Metered(client, budget=budget, log=log)
    out = llm.complete(ASK, context=CTX)
    llm.complete([Message("user", "again")], context=CTX)

    assert out.cost_usd is None
    assert budget.spent_usd == 0.0
    assert budget.tokens_of(7) == 2400
    warnings = [r for r in caplog.records if "no known price" in r.getMessage()]
    assert len(warnings) == 1


def test_the_limiter_is_asked_before_and_told_the_tokens_after() -> None:
    events: list[str] = []

    class Spy(RateLimiter):
        def acquire(self) -> float:
            events.append("acquire")
            return 0.0

        def record_tokens(self, tokens: int) -> None:
            events.append(f"tokens {tokens}")

    client = FakeClient(answer())
    Metered(client, limiter=Spy(60)).complete(ASK)
    assert events == ["acquire", "tokens 1200"]


def test_concurrent_calls_are_all_recorded_and_charged() -> None:
    log = MemoryCallLog()
    budget = Budget(log=log)
    llm = Metered(FakeClient(answer()), budget=budget, log=log)

    def work(worker: int) -> None:
        for i in range(25):
            llm.complete([Message("user", f"{worker}-{i}")], context=CallContext(role="ideate", experiment_id=worker))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(log.records) == 200
    assert budget.spent_usd == pytest.approx(200 * COST)
    assert all(budget.tokens_of(w) == 25 * 1200 for w in range(8))


def test_prompts_render_tool_turns_and_are_truncated() -> None:
    call = ToolCall(id="c1", name="read_file", arguments={"path": "a"}, raw_arguments='{"path": "a"}')
    text = render_prompt(
        "sys",
        [
            Message("user", "go"),
            Message("assistant", "", tool_calls=(call,)),
            Message("tool", "boom", tool_call_id="c1", is_error=True),
        ],
        [ToolSpec("read_file", "d", {})],
    )
    assert text == (
        "[system]\nsys\n\n[tools] read_file\n\n[user]\ngo\n\n[assistant]\n"
        '-> read_file({"path": "a"}) [c1]\n\n[tool result c1 ERROR]\nboom'
    )
    long = "a" * 5000 + "b" * 5000
    cut = truncate(long)
    assert len(cut) <= TEXT_LIMIT
    assert cut.startswith("a" * 3000) and cut.endswith("b" * 3000)
    assert "characters cut" in cut
    assert truncate("short") == "short"


def test_records_survive_a_json_round_trip_as_a_store_keeps_them() -> None:
    call = ToolCall(id="c1", name="read_file", arguments=None, raw_arguments="{broken")
    reply = Completion(text="t", tool_calls=(call,), usage=Usage(10, 5, 2, 1), model="m", stop_reason="tool_use")
    log = MemoryCallLog()
    Metered(FakeClient(reply), log=log).complete(ASK, context=CTX)
    [rec] = log.records
    stored = json.loads(json.dumps(rec.to_dict()))
    restored = Completion.from_dict(stored["completion"])
    assert restored.tool_calls == (call,)
    assert restored.usage == Usage(10, 5, 2, 1)
    assert restored.text == "t" and restored.cost_usd == rec.cost_usd
