"""labmind_eval.py, the trusted evaluator: exact scoring, and the upstream cheats it catches."""

from __future__ import annotations

import io
import json
import math
import pickle
import zipfile
from pathlib import Path

import pytest

from .nckit import TinyLM, independent_bpb, make_eval_task, pack_module, run_in, torch, upstream_style_bpb

VOCAB, SEQ = 48, 16


@pytest.fixture(scope="module")
def ev():
    return pack_module("labmind_eval")


@pytest.fixture(scope="module")
def export():
    pack_module("labmind_attn")
    return pack_module("labmind_export")


@pytest.fixture
def task(tmp_path: Path) -> Path:
    return make_eval_task(tmp_path / "task", vocab_size=VOCAB, seq_len=SEQ)


def _save(export, task: Path, mode: str, name: str = "model.pt2", **kwargs) -> Path:
    model = TinyLM(VOCAB, SEQ, mode=mode)
    export.save(model, seq_len=SEQ, vocab_size=VOCAB, path=str(task / name), batch=4, autocast=False, **kwargs)
    return task / name


def _stream(ev, task: Path) -> tuple[torch.Tensor, torch.Tensor]:
    manifest = ev.read_manifest(task)
    return ev.load_split(manifest, "val", task), ev.load_token_bytes(manifest, task)


def test_val_bpb_equals_an_independent_computation(ev, export, task: Path) -> None:
    status, result = ev.evaluate(_save(export, task, "honest"), "val", "cpu", task)
    stream, token_bytes = _stream(ev, task)
    assert status == 0
    assert result["val_bpb"] == pytest.approx(independent_bpb(TinyLM(VOCAB, SEQ), stream, token_bytes, SEQ),
                                              rel=1e-9)
    # Every token after the first is a target once; BOS targets (byte length 0) are left out of both sums.
    scored = token_bytes[stream[1:]] > 0
    assert result["targets"] == int(scored.sum()) and result["bytes"] == int(token_bytes[stream[1:]].sum())
    assert result["probe"]["leak"] == 0 and result["probe"]["cross_row"] == 0
    assert 1.5 < result["val_bpb"] < 4  # an untrained model: about log2(44) bits over ~2.5 bytes a token


def test_holdout_split_is_scored_separately(ev, export, task: Path) -> None:
    model = _save(export, task, "honest")
    assert ev.evaluate(model, "holdout", "cpu", task)[1]["val_bpb"] != ev.evaluate(model, "val", "cpu", task)[1][
        "val_bpb"]


def test_lying_loss_fools_upstream_scoring_but_not_labmind(ev, export, task: Path) -> None:
    """Upstream sums whatever forward(x, y) returns; labmind never passes the targets and computes the loss."""
    stream, token_bytes = _stream(ev, task)
    assert upstream_style_bpb(TinyLM(VOCAB, SEQ, mode="liar"), stream, token_bytes, SEQ) == 0.0
    assert upstream_style_bpb(TinyLM(VOCAB, SEQ), stream, token_bytes, SEQ) > 1.5
    honest = ev.evaluate(_save(export, task, "honest"), "val", "cpu", task)[1]["val_bpb"]
    liar = ev.evaluate(_save(export, task, "liar", "liar.pt2"), "val", "cpu", task)[1]["val_bpb"]
    assert liar == honest


@pytest.mark.parametrize("mode", ["peek", "bidirectional", "cross_row"])
def test_models_that_see_the_answer_are_rejected(ev, export, task: Path, mode: str) -> None:
    path = _save(export, task, mode)
    with pytest.raises(ev.Rejected, match="not causal"):
        ev.evaluate(path, "val", "cpu", task)
    module, _ = ev.load_model(path, "cpu")
    manifest = ev.read_manifest(task)
    stream, _ = _stream(ev, task)
    first = ev.windows(stream, SEQ, manifest["bos_token_id"])[0][:4]
    probe = ev.causality_probe(module, first, VOCAB)
    moved = probe["cross_row"] if mode == "cross_row" else probe["leak"]
    assert moved > 100 * probe["tolerance"], probe


def test_peeking_would_have_paid_off_without_the_probe(ev, export, task: Path) -> None:
    """The probe matters: scored without it, a model fed the next token beats an honest one by far."""
    stream, token_bytes = _stream(ev, task)
    cheat = independent_bpb(TinyLM(VOCAB, SEQ, mode="peek"), stream, token_bytes, SEQ)
    assert cheat < 0.5 * independent_bpb(TinyLM(VOCAB, SEQ), stream, token_bytes, SEQ)
    with pytest.raises(ev.Rejected, match="not causal"):
        ev.evaluate(_save(export, task, "peek"), "val", "cpu", task)


def test_state_kept_between_calls_is_rejected(ev, export, task: Path) -> None:
    with pytest.raises(ev.Rejected, match="changes its own buffers"):
        ev.evaluate(_save(export, task, "stateful"), "val", "cpu", task)


def test_non_finite_logits_score_nan_with_status_1(ev, export, task: Path) -> None:
    status, result = ev.evaluate(_save(export, task, "nan"), "val", "cpu", task)
    assert status == 1 and math.isnan(result["val_bpb"])


def test_windows_score_each_target_exactly_once(ev) -> None:
    stream = torch.arange(1, 38)  # 37 tokens: 36 targets, windows of 8 -> 5 rows, the last padded
    inputs, targets, scored = ev.windows(stream, 8, pad_id=0)
    assert inputs.shape == targets.shape == scored.shape == (5, 8)
    assert targets[scored].tolist() == list(range(2, 38))
    assert (inputs[scored] + 1 == targets[scored]).all()  # each target's input is the token before it
    assert int(scored.sum()) == 36


def _doc(target: str, **args) -> dict:
    inputs = [{"name": k, "arg": v, "kind": 1} for k, v in args.items()]
    return {"graph_module": {"graph": {"nodes": [{"target": target, "inputs": inputs, "outputs": []}]}}}


@pytest.mark.parametrize(("doc", "why"), [
    (_doc("torch.ops.aten.from_file.default"), "not allowed"),
    (_doc("torch.ops.aten._print.default"), "not allowed"),
    (_doc("torch.ops.aten.randn.default"), "not allowed"),
    (_doc("torch.ops.aten.bernoulli.p"), "not allowed"),
    (_doc("torch.ops.aten.dropout.default", train={"as_bool": True}), "dropout in training mode"),
    (_doc("torch.ops.mylib.lookup.default"), "not an ATen operator"),
    (_doc("builtins.exec"), "not an ATen operator"),
    (_doc("torch.ops.aten.add.Tensor", other={"as_expr": {"expr_str": "__import__('os')"}}), "as_expr"),
    ({"graph_module": {}, "guards_code": ["import os"]}, "guards_code"),
    ({"graph_module": {}, "range_constraints": {"s0": {"min_val": 1}}}, "range_constraints"),
])
def test_graph_checks_refuse_what_could_run_code_or_cheat(ev, doc: dict, why: str) -> None:
    problems = ev.check_program(doc)
    assert problems and any(why in p for p in problems), problems


def test_plain_aten_graph_and_eval_mode_dropout_pass(ev) -> None:
    assert ev.check_program(_doc("torch.ops.aten.mm.default")) == []
    assert ev.check_program(_doc("torch.ops.aten.dropout.default", train={"as_bool": False})) == []


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(__file__).with_name("PAYLOAD_RAN"),))


def test_pickled_code_in_the_model_file_never_runs(ev, export, task: Path) -> None:
    path = _save(export, task, "honest")
    marker = Path(__file__).with_name("PAYLOAD_RAN")
    marker.unlink(missing_ok=True)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    buffer = io.BytesIO()
    torch.save({"model.wte.weight": _Payload()}, buffer)  # torch.save pickles whatever it is given
    members["weights.pt"] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    with pytest.raises(ev.Rejected, match="not plain tensors"):
        ev.load_model(path, "cpu")
    assert not marker.exists()


def test_torch_archive_or_other_formats_are_refused(ev, task: Path) -> None:
    path = task / "model.pt2"
    path.write_bytes(pickle.dumps({"model": 1}))
    with pytest.raises(ev.Rejected, match="not a model written by labmind_export"):
        ev.load_model(path, "cpu")
    with zipfile.ZipFile(path, "w") as zf:
        for name in ("program.json", "weights.pt", "constants.pt", "inputs.pt"):
            zf.writestr(name, b"")
        zf.writestr("labmind.json", json.dumps({"format": "other/1"}))
    with pytest.raises(ev.Rejected, match="format"):
        ev.load_model(path, "cpu")


def test_model_for_another_context_or_vocabulary_is_refused(ev, export, task: Path) -> None:
    model = TinyLM(VOCAB, 2 * SEQ)
    export.save(model, seq_len=2 * SEQ, vocab_size=VOCAB, path=str(task / "long.pt2"), batch=4, autocast=False)
    with pytest.raises(ev.Rejected, match="seq_len 32"):
        ev.evaluate(task / "long.pt2", "val", "cpu", task)


def test_changed_validation_tokens_fail_their_digest(ev, export, task: Path) -> None:
    path = _save(export, task, "honest")
    data = bytearray((task / "data" / "val.bin").read_bytes())
    data[10] ^= 1
    (task / "data" / "val.bin").write_bytes(bytes(data))
    with pytest.raises(ev.DataError, match="does not match its sha256"):
        ev.evaluate(path, "val", "cpu", task)
    (task / "data" / "val.bin").write_bytes(b"")  # what a hidden file reads as
    with pytest.raises(ev.DataError, match="is empty"):
        ev.evaluate(path, "val", "cpu", task)


def test_command_line_prints_the_metric_last_or_refuses_with_status_2(ev, export, task: Path) -> None:
    (task / "labmind_eval.py").write_text(Path(ev.__file__).read_text())
    _save(export, task, "honest")
    _save(export, task, "bidirectional", "cheat.pt2")
    good = run_in(task, "labmind_eval.py", "model.pt2")
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip().splitlines()[-1].startswith("val_bpb: ")
    bad = run_in(task, "labmind_eval.py", "cheat.pt2")
    assert bad.returncode == 2 and "val_bpb" not in bad.stdout and "not causal" in bad.stderr
    missing = run_in(task, "labmind_eval.py", "absent.pt2")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
