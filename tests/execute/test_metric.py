from __future__ import annotations

import math
from pathlib import Path

from labmind.execute.metric import MAX_LINE_CHARS, iter_log_lines, parse_log, parse_metrics


def test_colon_equals_and_inline_forms() -> None:
    lines = ["val_bpb: 1.25", "step 3 | loss=2.5e-1 | lr = 3e-4", "  acc   =   -0.5  "]
    parsed = parse_metrics(lines, ["val_bpb", "loss", "lr", "acc"])
    assert parsed.values == {"val_bpb": 1.25, "loss": 0.25, "lr": 3e-4, "acc": -0.5}
    assert parsed.counts == {"val_bpb": 1, "loss": 1, "lr": 1, "acc": 1}


def test_name_must_be_a_whole_token() -> None:
    lines = ["my_val_bpb: 1", "val_bpb_ema: 2", "train.val_bpb=3", "val_bpb2: 4", "xval_bpb=5", "val_bpb: 6x"]
    parsed = parse_metrics(lines, ["val_bpb"])
    assert parsed.get("val_bpb") is None
    assert parsed.count("val_bpb") == 0


def test_names_are_case_sensitive_and_longest_name_wins() -> None:
    parsed = parse_metrics(["Loss: 1", "loss.ema: 2", "loss: 3"], ["loss", "loss.ema"])
    assert parsed.values == {"loss": 3.0, "loss.ema": 2.0}


def test_json_lines() -> None:
    lines = [
        '{"val_bpb": 1.5, "loss": "nan", "step": 10}',
        '{"val_bpb": "inf"}',
        '{"loss": true}',
        "{not json}",
    ]
    parsed = parse_metrics(lines, ["val_bpb", "loss", "missing"])
    assert parsed.get("val_bpb") == math.inf
    assert parsed.count("val_bpb") == 2
    assert math.isnan(parsed.values["loss"])
    assert parsed.count("loss") == 1  # a bool is not a metric value
    assert parsed.get("missing") is None


def test_json_line_is_not_also_scanned_as_text() -> None:
    parsed = parse_metrics(['{"note": "score: 9", "score": 1}'], ["score"])
    assert parsed.values == {"score": 1.0}
    assert parsed.count("score") == 1


def test_repeats_keep_last_value_and_count() -> None:
    parsed = parse_metrics(["score: 1", "noise", "score: 2", "score=3 score=4"], ["score"])
    assert parsed.get("score") == 4.0
    assert parsed.count("score") == 4


def test_non_finite_values_are_recognized() -> None:
    expected = {"nan": None, "NaN": None, "inf": math.inf, "-inf": -math.inf, "Infinity": math.inf}
    for text, want in expected.items():
        value = parse_metrics([f"score: {text}"], ["score"]).get("score")
        assert value is not None, text
        assert math.isnan(value) if want is None else value == want, text


def test_no_names_parses_nothing() -> None:
    assert parse_metrics(["score: 1"], []).values == {}


def test_overlong_line_is_cut(tmp_path: Path) -> None:
    log = tmp_path / "log"
    # The value sits beyond the cap, so it is never seen; the following line still is.
    log.write_text("x" * (MAX_LINE_CHARS * 5) + " score: 7\nscore: 2\n")
    lines = list(iter_log_lines(log))
    assert len(lines) == 2
    assert len(lines[0]) <= MAX_LINE_CHARS * 4
    assert parse_log(log, ["score"]).values == {"score": 2.0}
    assert parse_log(log, ["score"]).count("score") == 1


def test_parse_log_byte_range(tmp_path: Path) -> None:
    log = tmp_path / "log"
    first = b"score: 1\n"
    log.write_bytes(first + b"score: 2\nscore: 3\n")
    assert parse_log(log, ["score"], end=len(first)).values == {"score": 1.0}
    tail = parse_log(log, ["score"], start=len(first))
    assert tail.values == {"score": 3.0}
    assert tail.count("score") == 2
    assert parse_log(tmp_path / "absent", ["score"]).values == {}
