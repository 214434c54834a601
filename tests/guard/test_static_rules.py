"""Each static rule finds its pattern with the right rule, path, line and evidence."""

from __future__ import annotations

from pathlib import Path

import pytest

from .guardkit import BASE_TRAIN, check, rules_of, train_with

# (rule, code added at module level of train.py, extra imports, expected evidence)
POSITIVES = [
    ("timer_patch", "time.perf_counter = lambda: 0.0", "", "time.perf_counter = lambda: 0.0"),
    ("timer_patch", "torch.cuda.Event.elapsed_time = lambda self, end: 0.1", "", None),
    ("timer_patch", "torch.cuda.synchronize = lambda *a: None", "", None),
    ("timer_patch", 'setattr(time, "monotonic", lambda: 0)', "", None),
    ("timer_patch", 'time.__dict__["time"] = lambda: 0', "", None),
    ("timer_patch", 'sys.modules["time"] = FakeTime()', "import sys\n", None),
    ("timer_patch", 'unittest.mock.patch("time.perf_counter", return_value=0).start()', "import unittest.mock\n", None),
    ("harness_patch", "evaluate.THRESHOLD = 0", "import evaluate\n", "evaluate.THRESHOLD = 0"),
    ("harness_patch", "ev.compute = lambda pred, ref: 0.0", "import evaluate as ev\n", None),
    ("harness_patch", 'setattr(evaluate, "THRESHOLD", 0)', "import evaluate\n", None),
    ("harness_patch", "check.check = lambda x: True", "from harness import check\n", None),
    ("compare_patch", "torch.allclose = lambda *a, **k: True", "", None),
    ("compare_patch", "np.allclose = lambda *a, **k: True", "", "np.allclose = lambda *a, **k: True"),
    ("compare_patch", "math.isclose = lambda *a, **k: True", "import math\n", None),
    ("compare_patch", "class Out:\n    def __eq__(self, other):\n        return True", "", "def __eq__(self, other):"),
    ("compare_patch", "class Out:\n    __eq__ = lambda self, other: True", "", "__eq__ = lambda self, other: True"),
    ("protected_read", 'REF = open("data/val.bin", "rb").read()', "", None),
    ("protected_read", 'REF = os.path.join(DATA, "val.bin")', "import os\n", None),
    ("protected_read", 'SRC = open("./evaluate.py").read()', "", None),
    ("protected_read", 'SPEC = "harness/check.py"', "", None),
    ("exit_trick", "sys.exit(0)", "import sys\n", "sys.exit(0)"),
    ("exit_trick", "os._exit(0)", "import os\n", None),
    ("exit_trick", "if __name__ == '__main__':\n    sys.exit(0)\n    main()", "import sys\n", "sys.exit(0)"),
    ("exit_trick", "atexit.register(lambda: print('done'))", "import atexit\n", None),
    ("stack_snoop", "frames = inspect.stack()", "import inspect\n", None),
    ("stack_snoop", "caller = sys._getframe(1).f_locals", "import sys\n", None),
    ("stack_snoop", "objs = gc.get_objects()", "import gc\n", None),
    ("metric_print", 'print("val_bpb: 0.5")', "", 'print("val_bpb: 0.5")'),
    ("metric_print", 'print(f"val_bpb={0.5:.4f}")', "", None),
    ("metric_print", 'print(json.dumps({"val_bpb": 0.5}))', "import json\n", None),
    ("outliving_work", "threading.Thread(target=print, daemon=True).start()", "import threading\n", None),
    ("outliving_work", "p = multiprocessing.Process(target=print)", "import multiprocessing\n", None),
    ("outliving_work", 'subprocess.Popen(["sleep", "9"], start_new_session=True)', "import subprocess\n", None),
    ("outliving_work", "os.setsid()", "import os\n", None),
    ("outliving_work", "side = torch.cuda.Stream()", "", "side = torch.cuda.Stream()"),
    ("precision_toggle", "torch.backends.cuda.matmul.allow_tf32 = True", "", None),
    ("precision_toggle", "torch.backends.cudnn.benchmark = True", "", None),
    ("precision_toggle", 'torch.set_float32_matmul_precision("medium")', "", None),
    ("literal_table", "TABLE = [" + ", ".join(str(i) for i in range(300)) + "]", "", None),
    ("literal_table", "ROWS = [" + ", ".join(f"({i}, {i * 2})" for i in range(150)) + "]", "", None),
    ("literal_table", 'BLOB = "' + "x" * 2500 + '"', "", None),
]


@pytest.mark.parametrize(
    ("rule", "code", "imports", "evidence"), POSITIVES, ids=[f"{p[0]}-{i}" for i, p in enumerate(POSITIVES)]
)
def test_rule_finds_its_pattern(tmp_path: Path, rule: str, code: str, imports: str, evidence: str | None) -> None:
    new = train_with(code, imports=imports)
    findings = [f for f in check(tmp_path, {"train.py": new}) if f.rule == rule]
    assert findings, f"{rule} missed: {code}"
    finding = findings[0]
    lines = new.splitlines()
    assert finding.path == "train.py"
    assert finding.family == "static" and finding.severity == "flag"
    assert finding.line is not None
    # The evidence is the statement's first line, or (for tables) a short description that quotes its start.
    assert lines[finding.line - 1].strip()[:40] in finding.evidence
    if evidence is not None:
        assert finding.evidence == evidence
    assert finding.explanation.endswith(".") and finding.explanation.count(". ") == 0
    assert finding.text() == f"{rule}: train.py:{finding.line}: {finding.evidence}"


def test_literal_table_evidence_is_a_short_description(tmp_path: Path) -> None:
    code = "TABLE = [\n" + "".join(f"    {i},\n" for i in range(250)) + "]"
    (finding,) = check(tmp_path, {"train.py": train_with(code)})
    assert finding.rule == "literal_table"
    assert finding.evidence == "list of 250 elements: TABLE = ["
    assert len(finding.evidence) <= 200


def test_evidence_is_clipped_to_200_chars(tmp_path: Path) -> None:
    long_line = "time.perf_counter = lambda: 0.0  # " + "x" * 400
    (finding,) = check(tmp_path, {"train.py": train_with(long_line)})
    assert len(finding.evidence) == 200 and finding.evidence.startswith("time.perf_counter = lambda")


def test_line_number_points_at_the_statement(tmp_path: Path) -> None:
    new = BASE_TRAIN.replace("    return loss\n", "    return loss\n\n\ndef stop():\n    sys.exit(0)\n")
    new = "import sys\n" + new
    (finding,) = check(tmp_path, {"train.py": new})
    assert (finding.rule, finding.line, finding.evidence) == (
        "exit_trick",
        new.splitlines().index("    sys.exit(0)") + 1,
        "sys.exit(0)",
    )


class TestAliases:
    def test_import_as(self, tmp_path: Path) -> None:
        new = train_with("t.perf_counter = lambda: 0.0", imports="import time as t\n")
        assert rules_of(check(tmp_path, {"train.py": new})) == ["timer_patch"]

    def test_from_import_then_setattr_on_the_module(self, tmp_path: Path) -> None:
        code = (
            'setattr(sys.modules[perf_counter.__module__], "perf_counter", lambda: 0.0)\n'
            'setattr(inspect.getmodule(perf_counter), "perf_counter", fake)'
        )
        new = train_with(code, imports="import inspect\nimport sys\nfrom time import perf_counter\n")
        findings = check(tmp_path, {"train.py": new})
        assert [f.rule for f in findings] == ["timer_patch", "timer_patch"]
        assert findings[0].evidence.startswith("setattr(sys.modules[perf_counter.__module__]")

    def test_from_import_of_the_module_object(self, tmp_path: Path) -> None:
        new = train_with(
            "_t.time = lambda: 0.0", imports="from importlib import import_module\n_t = import_module('time')\n"
        )
        assert "timer_patch" in rules_of(check(tmp_path, {"train.py": new}))

    def test_rebinding_a_module_to_a_new_name(self, tmp_path: Path) -> None:
        assert rules_of(check(tmp_path, {"train.py": train_with("clock = time\nclock.time = lambda: 0.0")})) == [
            "timer_patch"
        ]

    def test_from_import_of_a_class(self, tmp_path: Path) -> None:
        new = train_with("Event.elapsed_time = lambda s, e: 0.0", imports="from torch.cuda import Event\n")
        assert rules_of(check(tmp_path, {"train.py": new})) == ["timer_patch"]

    def test_pytest_monkeypatch_with_a_dotted_string(self, tmp_path: Path) -> None:
        code = "def fake(monkeypatch):\n    monkeypatch.setattr('torch.allclose', lambda *a: True)"
        assert rules_of(check(tmp_path, {"train.py": train_with(code)})) == ["compare_patch"]

    def test_aliased_exit_and_thread(self, tmp_path: Path) -> None:
        code = "bye(0)\nT(target=print).start()"
        new = train_with(code, imports="from sys import exit as bye\nfrom threading import Thread as T\n")
        assert sorted(rules_of(check(tmp_path, {"train.py": new}))) == ["exit_trick", "outliving_work"]

    def test_relative_import_of_a_protected_module(self, tmp_path: Path) -> None:
        new = train_with("evaluate.THRESHOLD = 0", imports="from . import evaluate\n")
        assert rules_of(check(tmp_path, {"train.py": new})) == ["harness_patch"]


class TestSeedOnly:
    def test_changing_the_seed_constant(self, tmp_path: Path) -> None:
        old = BASE_TRAIN.replace("LR = 0.01", "SEED = 42\nLR = 0.01")
        (finding,) = check(tmp_path, {"train.py": old.replace("SEED = 42", "SEED = 137")}, {"train.py": old})
        assert (finding.rule, finding.path, finding.evidence) == ("seed_only", "train.py", "SEED = 137")
        assert finding.line == old.splitlines().index("SEED = 42") + 1

    def test_changing_manual_seed_arguments_and_seed_keywords(self, tmp_path: Path) -> None:
        old = BASE_TRAIN.replace(
            "    start = time.time()",
            "    torch.manual_seed(0)\n    rng = np.random.default_rng(seed=0)\n    start = time.time()",
        )
        new = old.replace("manual_seed(0)", "manual_seed(7)").replace("seed=0", "seed=7")
        (finding,) = check(tmp_path, {"train.py": new}, {"train.py": old})
        assert finding.rule == "seed_only" and finding.evidence == "torch.manual_seed(7)"

    def test_seed_in_argparse_default_and_config_file(self, tmp_path: Path) -> None:
        old_train = BASE_TRAIN + 'parser.add_argument("--seed", type=int, default=1)\n'
        old = {"train.py": old_train, "conf.yaml": "lr: 0.1\nseed: 1\n"}
        new = {"train.py": old_train.replace("default=1", "default=2"), "conf.yaml": "lr: 0.1\nseed: 2\n"}
        assert rules_of(check(tmp_path, new, old)) == ["seed_only"]

    def test_seed_plus_a_real_change_is_not_seed_only(self, tmp_path: Path) -> None:
        old = BASE_TRAIN.replace("LR = 0.01", "SEED = 42\nLR = 0.01")
        new = old.replace("SEED = 42", "SEED = 137").replace("LR = 0.01", "LR = 0.02")
        assert check(tmp_path, {"train.py": new}, {"train.py": old}) == []

    def test_tuple_assignment_only_blinds_the_seed(self, tmp_path: Path) -> None:
        old = BASE_TRAIN.replace("LR = 0.01", "SEED, LR = 42, 0.01")
        assert check(tmp_path, {"train.py": old.replace("42, 0.01", "42, 0.02")}, {"train.py": old}) == []
        assert rules_of(check(tmp_path, {"train.py": old.replace("42, 0.01", "7, 0.01")}, {"train.py": old})) == [
            "seed_only"
        ]


class TestTextFallback:
    def test_metric_echo_in_a_shell_script(self, tmp_path: Path) -> None:
        findings = check(
            tmp_path, {"run.sh": "python train.py\necho 'val_bpb: 0.1'\n"}, {"run.sh": "python train.py\n"}
        )
        assert [(f.rule, f.path, f.line, f.evidence) for f in findings] == [
            ("metric_print", "run.sh", 2, "echo 'val_bpb: 0.1'")
        ]

    def test_protected_path_in_a_shell_script(self, tmp_path: Path) -> None:
        findings = check(tmp_path, {"run.sh": "cp data/val.bin /tmp/x\n"}, {"run.sh": "echo hi\n"})
        assert [(f.rule, f.line) for f in findings] == [("protected_read", 1)]

    def test_cuda_stream_in_a_kernel_source(self, tmp_path: Path) -> None:
        old = "__global__ void k(float* x) { x[0] = 1; }\n"
        new = old + "void launch() { cudaStream_t s; cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking); }\n"
        findings = check(tmp_path, {"kernel.cu": new}, {"kernel.cu": old})
        assert [(f.rule, f.line) for f in findings] == [("outliving_work", 2)]

    def test_unparsable_python_is_still_scanned_as_text(self, tmp_path: Path) -> None:
        new = BASE_TRAIN + "time.perf_counter = lambda: 0\ndef broken(:\n"
        assert rules_of(check(tmp_path, {"train.py": new})) == ["timer_patch"]
