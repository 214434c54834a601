"""Budget: hard caps, checked before a call and charged after; resumable from the call log; thread-safe."""

from __future__ import annotations

import threading

import pytest

from labmind.llm import Budget, CallContext, CallRecord, Completion, LLMBudgetExceeded, MemoryCallLog, Usage

EXP = CallContext(role="implement", experiment_id=3)


def done(cost: float | None, tokens: int = 100) -> Completion:
    return Completion(text="", usage=Usage(input_tokens=tokens // 2, output_tokens=tokens - tokens // 2), cost_usd=cost)


def test_no_caps_never_refuses() -> None:
    budget = Budget()
    for _ in range(100):
        budget.check(EXP)
        budget.charge(EXP, done(1.0, 10_000))
    assert budget.spent_usd == pytest.approx(100.0)


def test_the_dollar_cap_refuses_once_reached_and_says_how_much_was_spent() -> None:
    budget = Budget(usd_cap=0.05)
    budget.charge(EXP, done(0.03))
    budget.check(EXP)
    budget.charge(EXP, done(0.025))
    with pytest.raises(LLMBudgetExceeded) as caught:
        budget.check(CallContext(role="ideate"))
    message = str(caught.value)
    assert "budget of $0.05 is used up ($0.0550 spent)" in message
    assert "--llm-budget-usd" in message


def test_the_token_cap_is_per_experiment() -> None:
    budget = Budget(tokens_per_experiment=1000)
    budget.charge(EXP, done(0.0, 1000))
    with pytest.raises(LLMBudgetExceeded, match=r"experiment 3 reached its cap of 1,000 LLM tokens \(1,000 used\)"):
        budget.check(EXP)
    budget.check(CallContext(role="implement", experiment_id=4))
    budget.check(CallContext(role="director"))  # calls for no experiment have no token cap
    budget.check(None)


def test_unknown_cost_counts_no_dollars_but_its_tokens() -> None:
    budget = Budget(usd_cap=1.0, tokens_per_experiment=150)
    budget.charge(EXP, done(None, 100))
    assert budget.spent_usd == 0.0
    assert budget.tokens_of(3) == 100
    budget.charge(EXP, done(None, 100))
    with pytest.raises(LLMBudgetExceeded):
        budget.check(EXP)


def test_counters_start_from_the_call_log_so_caps_survive_resume() -> None:
    log = MemoryCallLog()
    for exp, cost in ((3, 0.4), (3, 0.4), (5, 0.1)):
        log.record(
            CallRecord(
                at=0.0,
                spec="anthropic:claude-sonnet-4-6",
                model="claude-sonnet-4-6",
                role="implement",
                experiment_id=exp,
                line_id=None,
                cache_key=f"k{exp}{cost}",
                status="ok",
                input_tokens=600,
                output_tokens=100,
                cost_usd=cost,
            )
        )
    budget = Budget(usd_cap=1.0, tokens_per_experiment=1400, log=log)
    assert budget.spent_usd == pytest.approx(0.9)
    assert budget.tokens_of(3) == 1400
    with pytest.raises(LLMBudgetExceeded, match="experiment 3"):
        budget.check(EXP)
    budget.check(CallContext(role="implement", experiment_id=5))
    budget.charge(EXP, done(0.2))
    with pytest.raises(LLMBudgetExceeded, match=r"\$1\.00"):
        budget.check(CallContext(role="implement", experiment_id=5))


def test_charges_from_many_threads_add_up_exactly() -> None:
    budget = Budget(usd_cap=10_000.0, tokens_per_experiment=10**9)

    def work(exp: int) -> None:
        ctx = CallContext(role="implement", experiment_id=exp % 3)
        for _ in range(2000):
            budget.check(ctx)
            budget.charge(ctx, done(0.001, 10))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.spent_usd == pytest.approx(12.0)
    assert [budget.tokens_of(e) for e in range(3)] == [40_000, 40_000, 40_000]


@pytest.mark.parametrize(("usd", "tokens"), [(-1.0, None), (None, 0)])
def test_nonsense_caps_are_refused(usd: float | None, tokens: int | None) -> None:
    with pytest.raises(ValueError, match="must be"):
        Budget(usd_cap=usd, tokens_per_experiment=tokens)


def test_audit_and_reflect_neither_count_against_nor_are_stopped_by_the_token_cap() -> None:
    log = MemoryCallLog()
    budget = Budget(usd_cap=1.0, tokens_per_experiment=1000, log=log)
    review = CallContext(role="audit", experiment_id=3)
    budget.charge(EXP, done(0.1, 1000))
    with pytest.raises(LLMBudgetExceeded, match="experiment 3 reached its cap"):
        budget.check(EXP)
    budget.check(review)  # the cap spent by implementing it must not leave it unaudited
    budget.check(CallContext(role="reflect", experiment_id=3))
    budget.charge(review, done(0.2, 5000))
    assert budget.tokens_of(3) == 1000 and budget.spent_usd == pytest.approx(0.3)  # dollars still count
    for role, tokens in (("implement", 400), ("audit", 9000)):
        log.record(CallRecord(at=0.0, spec="openai:x", model="x", role=role, experiment_id=7, line_id=1,
                              cache_key=role, status="ok", input_tokens=tokens))
    assert Budget(tokens_per_experiment=1000, log=log).tokens_of(7) == 400  # and so on resume
