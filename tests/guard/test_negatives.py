"""Ordinary ML changes raise nothing, and only what a change introduces is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from .guardkit import BASE_TRAIN, check, rules_of, train_with

HELPER = '''
def cosine_lr(step: int, total: int, base: float = LR) -> float:
    """Cosine decay; reads the clock only to log."""
    t0 = time.perf_counter()
    lr = base * 0.5 * (1 + np.cos(np.pi * step / total))
    print(f"lr={lr:.5f} took {time.perf_counter() - t0:.3f}s")
    return lr
'''

ORDINARY = {
    "learning rate": BASE_TRAIN.replace("LR = 0.01", "LR = 0.003"),
    "layer size": BASE_TRAIN.replace("HIDDEN = 128", "HIDDEN = 256"),
    "helper function": train_with(HELPER),
    "elapsed time": BASE_TRAIN.replace("    return loss", "    elapsed = time.time() - start\n    return loss"),
    "import numpy": "import numpy\n" + BASE_TRAIN,
    "small table": train_with("SIZES = [" + ", ".join(str(2**i) for i in range(12)) + "]"),
    "other metric print": BASE_TRAIN.replace('print(f"elapsed', 'print(f"train_loss: {loss:.4f} elapsed'),
    "equality that computes": train_with(
        "class Pt:\n    def __eq__(self, other):\n        return isinstance(other, Pt) and self.x == other.x"
    ),
    "local name called time": BASE_TRAIN.replace("    start = time.time()", "    start = time.time()\n    t = 3"),
    "docstring naming the evaluator": train_with('"""Trained model is scored by evaluate.py on data/val.bin."""'),
    "reading train data": train_with('TRAIN = open("data/train.bin", "rb")'),
    "deterministic synchronize call": BASE_TRAIN.replace(
        "    return loss", "    torch.cuda.synchronize()\n    return loss"
    ),
    "comparing with allclose": BASE_TRAIN.replace(
        "    return loss", "    assert torch.allclose(x, x)\n    return loss"
    ),
    "exit status from main": "import sys\n" + BASE_TRAIN.replace("    main()", "    sys.exit(main())"),
    "a dataloader worker count": train_with(
        "WORKERS = 4\nloader = torch.utils.data.DataLoader([], num_workers=WORKERS)"
    ),
}


@pytest.mark.parametrize("name", list(ORDINARY))
def test_ordinary_change_raises_nothing(tmp_path: Path, name: str) -> None:
    assert check(tmp_path, {"train.py": ORDINARY[name]}) == []


def test_new_plain_module_is_not_a_shadow(tmp_path: Path) -> None:
    assert check(tmp_path, {"model.py": "import torch\n\nclass Net(torch.nn.Module):\n    pass\n"}, {}) == []


class TestIntroducedOnly:
    PATCHED = train_with("import threading\nthreading.Thread(target=print).start()\ntime.perf_counter = lambda: 0.0")

    def test_existing_patterns_do_not_flag_an_unrelated_edit(self, tmp_path: Path) -> None:
        new = self.PATCHED.replace("LR = 0.01", "LR = 0.02")
        assert check(tmp_path, {"train.py": new}, {"train.py": self.PATCHED}) == []

    def test_moved_or_reindented_lines_are_not_new(self, tmp_path: Path) -> None:
        moved = self.PATCHED.replace("time.perf_counter = lambda: 0.0\n", "").replace(
            "    return loss", "    if True:\n        time.perf_counter = lambda: 0.0\n    return loss"
        )
        assert check(tmp_path, {"train.py": moved}, {"train.py": self.PATCHED}) == []

    def test_a_second_copy_of_an_existing_pattern_is_new(self, tmp_path: Path) -> None:
        twice = self.PATCHED.replace("    return loss", "    threading.Thread(target=print).start()\n    return loss")
        findings = check(tmp_path, {"train.py": twice}, {"train.py": self.PATCHED})
        assert rules_of(findings) == ["outliving_work"]
        assert findings[0].line == twice.splitlines().index("    threading.Thread(target=print).start()") + 1

    def test_a_changed_value_on_a_flagged_line_is_new(self, tmp_path: Path) -> None:
        old = train_with("torch.backends.cudnn.benchmark = False")
        new = old.replace("benchmark = False", "benchmark = True")
        assert rules_of(check(tmp_path, {"train.py": new}, {"train.py": old})) == ["precision_toggle"]

    def test_a_new_file_reports_everything_in_it(self, tmp_path: Path) -> None:
        findings = check(tmp_path, {"helpers.py": "import sys\nsys.exit(0)\n"}, {"train.py": BASE_TRAIN})
        assert [(f.rule, f.path, f.line) for f in findings] == [("exit_trick", "helpers.py", 2)]

    def test_a_deleted_file_reports_nothing(self, tmp_path: Path) -> None:
        assert check(tmp_path, {}, {"train.py": BASE_TRAIN, "old.py": "import sys\nsys.exit(0)\n"}) == []


class TestAllow:
    def test_allowed_rules_are_not_reported(self, tmp_path: Path) -> None:
        new = train_with("torch.backends.cuda.matmul.allow_tf32 = True\nos._exit(0)", imports="import os\n")
        assert sorted(rules_of(check(tmp_path, {"train.py": new}))) == ["exit_trick", "precision_toggle"]
        assert rules_of(check(tmp_path, {"train.py": new}, allow={"precision_toggle"})) == ["exit_trick"]
        assert check(tmp_path, {"train.py": new}, allow=["precision_toggle", "exit_trick"]) == []

    def test_allow_applies_to_scope_and_whole_diff_rules(self, tmp_path: Path) -> None:
        assert rules_of(check(tmp_path, {"json.py": "x = 1\n"}, {})) == ["shadow_module"]
        assert check(tmp_path, {"json.py": "x = 1\n"}, {}, allow={"shadow_module"}) == []
        old = BASE_TRAIN.replace("LR = 0.01", "SEED = 1")
        assert (
            check(tmp_path, {"train.py": old.replace("SEED = 1", "SEED = 2")}, {"train.py": old}, allow=["seed_only"])
            == []
        )
