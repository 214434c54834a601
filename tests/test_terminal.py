"""labmind.terminal: text from runs and models printed without obeying its control sequences."""

from __future__ import annotations

from labmind.terminal import printable


def test_control_and_format_characters_are_shown_as_escapes() -> None:
    text = "loss\x1b[2J\x1b]0;title\x07 \u202eevil\u200b \r\x00"
    assert printable(text) == "loss\\x1b[2J\\x1b]0;title\\x07 \\u202eevil\\u200b \\x0d\\x00"


def test_ordinary_text_is_untouched() -> None:
    text = "val_bpb: 1.07 ± 0.01 — naïve 模型 ✓\n\tnext line"
    assert printable(text) == text
    assert printable("a\nb", newlines=False) == "a\\x0ab"
