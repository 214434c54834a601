"""Trusted evaluator of the nanochat pack.  PROTECTED (written by `labmind pack nanochat`).

    python labmind_eval.py model.pt2 [--split val|holdout]     # score a saved model
    python labmind_eval.py --check-data                        # verify the task's data against its manifest

labmind runs this after every training run, in a fresh process, in a pristine checkout of the experiment's
commit holding only the run's artifact (model.pt2, written by labmind_export.save at the end of train.py).
The validation tokens (data/val.bin, data/holdout.bin) are hidden from the training run and visible here.

The metric, as upstream defines it: val_bpb = (sum over the scored targets of -ln p(target | preceding
tokens)) / (ln 2 x the UTF-8 bytes of those targets), where special tokens (byte length 0, e.g. BOS) are
left out of both sums. Unlike upstream's evaluate_bpb, which calls the candidate's forward(x, y) and sums the
loss it returns, this evaluator:
- reads the model as a torch.export graph of ATen operations (checked before anything is deserialized: only
  ATen operators and autocast regions, no symbolic shapes or custom objects, no printing, file-reading or
  random operators, no state kept between calls), so none of the candidate's Python code runs here;
- feeds input ids only and computes the cross-entropy itself, in float32, summed in float64;
- scores the split's pinned token stream exactly once: windows of seq_len tokens follow each other without
  overlap, and each token after the first is a target once (the last window is padded and the padding is
  not scored);
- runs a causality probe first: replacing the tokens after position t (three values of t) must not change
  the logits up to t, and replacing the other rows of a batch must not change a row's logits. Differences
  are compared with what running the same input twice gives (non-determinism), never with a loose constant.

Exit status: 0 scored (the last line is `val_bpb: X`); 1 the score is not finite (`val_bpb: nan`); 2 the
model is missing, malformed, not allowed or not causal (no metric line); 3 the task's data is missing or
does not match its manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import re
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
MODEL_FORMAT = "labmind-nanochat-model/1"
DATA_FORMAT = "labmind-nanochat-data/1"
MAX_BATCH = 64
MAX_PARAMS = 4_000_000_000
#: Positions t of the causality probe, as fractions of the sequence (the first token is always probed too).
PROBE_FRACTIONS = (0.0, 1 / 3, 2 / 3)
#: A prefix logit may move by at most max(PROBE_FLOOR, PROBE_NOISE_FACTOR x the repeat noise) when later
#: tokens change. Exact arithmetic gives 0; the floor absorbs float rounding of reordered reductions.
PROBE_FLOOR = 1e-5
PROBE_NOISE_FACTOR = 4.0

#: Higher-order operators a model may contain: autocast and grad-mode regions around ordinary ATen graphs.
ALLOWED_HIGHER_ORDER = {"torch.ops.higher_order.wrap_with_autocast",
                        "torch.ops.higher_order.wrap_with_set_grad_enabled"}
#: ATen operators a model may not contain: reading files, printing (a forged metric line in this log), and
#: randomness (a random model could hide a leak behind run-to-run noise).
DENIED_ATEN = re.compile(r"^torch\.ops\.aten\.(from_file|_print|[a-z_]*(rand|bernoulli|multinomial|normal|uniform|"
                         r"exponential|poisson|cauchy|geometric)[a-z_]*)(\.|$)")
#: Serialized fields that would make deserialization evaluate expressions or build arbitrary objects.
FORBIDDEN_FIELDS = ("as_expr", "as_sym_int", "as_sym_ints", "as_sym_float", "as_sym_floats", "as_sym_bool",
                    "as_sym_bools", "as_custom_obj", "custom_obj_values", "sym_int_values", "sym_float_values",
                    "sym_bool_values", "range_constraints", "guards_code")


class Rejected(Exception):
    """The artifact is not a model this evaluator will run."""


class DataError(Exception):
    """The task's data is missing or differs from its manifest."""


# --------------------------------------------------------------------------------------------- the model


def _target_problem(target: str, node: dict[str, Any]) -> str | None:
    if target == "_operator.getitem" or target in ALLOWED_HIGHER_ORDER:
        return None
    if not target.startswith("torch.ops.aten."):
        return f"operator {target} is not an ATen operator"
    if re.match(r"^torch\.ops\.aten\.(dropout|native_dropout|feature_dropout|alpha_dropout)\.", target):
        train = [i["arg"].get("as_bool") for i in node.get("inputs", []) if i.get("name") == "train"]
        return None if train == [False] else f"operator {target} is a dropout in training mode (random)"
    if DENIED_ATEN.match(target):
        return f"operator {target} is not allowed (file access, printing or randomness)"
    return None


def check_program(doc: Any) -> list[str]:
    """Problems with a serialized program (program.json), found before anything is deserialized."""
    problems: list[str] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key in FORBIDDEN_FIELDS and value:
                    problems.append(f"the graph uses `{key}` (symbolic shapes, guards or custom objects)")
                elif key == "target" and isinstance(value, str) and "inputs" in obj:
                    if (why := _target_problem(value, obj)) is not None:
                        problems.append(why)
                elif key == "as_operator" and isinstance(value, str) and (why := _target_problem(value, {})):
                    problems.append(why)
                walk(value)
        elif isinstance(obj, list):
            for item in obj:
                walk(item)

    walk(doc)
    return sorted(set(problems))


def _strip_metadata(obj: Any) -> None:
    """Drop node metadata (stack traces, module paths): the evaluator needs none of it, and less parsed text
    means less of the deserializer is exposed to the candidate's file."""
    if isinstance(obj, dict):
        if "target" in obj and "inputs" in obj and "metadata" in obj:
            obj["metadata"] = {}
        for value in obj.values():
            _strip_metadata(value)
    elif isinstance(obj, list):
        for item in obj:
            _strip_metadata(item)


def _tensors_only(blob: bytes, what: str, device: str) -> Any:
    if not blob:
        return {}
    try:
        return torch.load(io.BytesIO(blob), map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for malformed or non-tensor pickles
        raise Rejected(f"{what} is not plain tensors ({type(exc).__name__}: {str(exc)[:200]})") from exc


def _check_graph_module(gm: torch.fx.GraphModule) -> None:
    """The deserialized graph again, by object: ATen overloads, getitem and the allowed regions only."""
    import operator

    for module in gm.modules():
        if not isinstance(module, torch.fx.GraphModule):
            continue
        for node in module.graph.nodes:
            if node.op == "call_function":
                target = node.target
                if target is operator.getitem:
                    continue
                if isinstance(target, torch._ops.HigherOrderOperator):
                    name = f"torch.ops.higher_order.{target.name()}"
                    if name in ALLOWED_HIGHER_ORDER:
                        continue
                    raise Rejected(f"operator {name} is not allowed")
                if not isinstance(target, torch._ops.OpOverload) or target.namespace != "aten":
                    raise Rejected(f"operator {target} is not an ATen operator")
            elif node.op in ("call_method", "call_module") and not isinstance(
                    getattr(module, str(node.target), None), torch.fx.GraphModule):
                raise Rejected(f"graph node {node.op} {node.target} is not allowed")


def _check_no_state(program: Any) -> None:
    """Refuse a model that changes its buffers or its input when called, so one batch could influence the
    next. An exported graph may keep in-place operators; functionalizing a copy of it turns every such
    change into a declared output, which the signature then lists."""
    try:
        functional = program.run_decompositions({})
    except Exception as exc:  # the graph could not be re-traced
        raise Rejected(f"the graph cannot be functionalized: {type(exc).__name__}: {str(exc)[:300]}") from exc
    sig = functional.graph_signature
    changed = sorted(sig.buffers_to_mutate.values()) + sorted(sig.user_inputs_to_mutate.values())
    if changed:
        raise Rejected(f"the model changes its own buffers or its input when called, so one batch could "
                       f"influence the next: {changed}")


def load_model(path: Path, device: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model in `path` as a module mapping ids (batch, seq_len) to logits, and its metadata."""
    from torch._export.serde.serialize import SerializedArtifact, deserialize

    if not path.is_file():
        raise Rejected(f"{path} does not exist (did train.py finish and call labmind_export.save?)")
    try:
        with zipfile.ZipFile(path) as zf:
            members = {name: zf.read(name) for name in
                       ("labmind.json", "program.json", "weights.pt", "constants.pt", "inputs.pt")}
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise Rejected(f"{path} is not a model written by labmind_export.save: {exc}") from exc
    try:
        meta = json.loads(members["labmind.json"])
    except (ValueError, UnicodeDecodeError) as exc:
        raise Rejected(f"{path}: labmind.json is malformed: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise Rejected(f"{path} has format {meta.get('format') if isinstance(meta, dict) else None!r}, "
                       f"expected {MODEL_FORMAT!r}")
    try:
        doc = json.loads(members["program.json"])
    except (ValueError, UnicodeDecodeError) as exc:
        raise Rejected(f"{path}: program.json is malformed: {exc}") from exc
    for key in ("batch", "seq_len", "vocab_size"):
        if not isinstance(meta.get(key), int) or isinstance(meta.get(key), bool) or meta[key] < 1:
            raise Rejected(f"labmind.json: {key} must be a positive integer, got {meta.get(key)!r}")
    if meta["batch"] > MAX_BATCH:
        raise Rejected(f"batch {meta['batch']} is larger than {MAX_BATCH}")
    problems = check_program(doc)
    if problems:
        raise Rejected("the model's graph is not allowed: " + "; ".join(problems))
    _strip_metadata(doc)
    state = _tensors_only(members["weights.pt"], "weights.pt", device)
    constants = _tensors_only(members["constants.pt"], "constants.pt", device)
    inputs = _tensors_only(members["inputs.pt"], "inputs.pt", device)
    count = sum(t.numel() for t in [*state.values(), *constants.values()] if isinstance(t, torch.Tensor))
    if count > MAX_PARAMS:
        raise Rejected(f"the model holds {count:,} tensor elements, more than {MAX_PARAMS:,}")
    artifact = SerializedArtifact(json.dumps(doc).encode(), state, constants, inputs)
    try:
        program = deserialize(artifact)
    except Exception as exc:  # the deserializer raises many types for graphs it cannot rebuild
        raise Rejected(f"the graph cannot be rebuilt: {type(exc).__name__}: {str(exc)[:300]}") from exc
    sig = program.graph_signature
    if len(sig.user_inputs) != 1 or len(sig.user_outputs) != 1:
        raise Rejected(f"the model must take one input (ids) and return one output (logits); it takes "
                       f"{len(sig.user_inputs)} and returns {len(sig.user_outputs)}")
    _check_no_state(program)
    try:  # no generated guard function: the graph has no guards, and shapes are checked here
        module = program.module(check_guards=False)
    except TypeError:  # torch without check_guards
        module = program.module()
    _check_graph_module(module)
    return module, meta


# ------------------------------------------------------------------------------------------------ data


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(root: Path = HERE) -> dict[str, Any]:
    """data/manifest.json of the task at `root` (this file's folder)."""
    path = root / "data" / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    if manifest.get("format") != DATA_FORMAT:
        raise DataError(f"{path} has format {manifest.get('format')!r}, expected {DATA_FORMAT!r}")
    return manifest


def _verified(path: Path, sha256: str) -> Path:
    if not path.is_file():
        raise DataError(f"{path} is missing")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (is it hidden from this process?)")
    if _sha256(path) != sha256:
        raise DataError(f"{path} does not match its sha256 in data/manifest.json")
    return path


def load_split(manifest: dict[str, Any], split: str, root: Path = HERE) -> torch.Tensor:
    """The split's pinned token stream, checked against the manifest."""
    info = manifest["splits"].get(split)
    if info is None:
        raise DataError(f"the task has no '{split}' split (splits: {sorted(manifest['splits'])})")
    path = _verified(root / "data" / info["file"], info["sha256"])
    tokens = np.fromfile(path, dtype=np.dtype(info["dtype"]).newbyteorder("<"))
    if len(tokens) != info["tokens"] or len(tokens) < 2:
        raise DataError(f"{path} holds {len(tokens)} tokens, the manifest says {info['tokens']}")
    return torch.from_numpy(tokens.astype(np.int64))


def load_token_bytes(manifest: dict[str, Any], root: Path = HERE) -> torch.Tensor:
    info = manifest["tokenizer"]
    path = _verified(root / "tokenizer" / "token_bytes.pt", info["token_bytes_sha256"])
    token_bytes = torch.load(path, map_location="cpu", weights_only=True)
    if token_bytes.ndim != 1 or len(token_bytes) != manifest["vocab_size"]:
        raise DataError(f"{path} has shape {tuple(token_bytes.shape)}, expected ({manifest['vocab_size']},)")
    return token_bytes.long()


def check_data(root: Path = HERE) -> list[str]:
    """Every file the manifest lists, digested; the training shards live outside the task (data root)."""
    manifest = read_manifest(root)
    checked = []
    for split, info in sorted(manifest["splits"].items()):
        checked.append(f"{split}: {_verified(root / 'data' / info['file'], info['sha256'])}")
    _verified(root / "tokenizer" / "token_bytes.pt", manifest["tokenizer"]["token_bytes_sha256"])
    _verified(root / "tokenizer" / "tokenizer.pkl", manifest["tokenizer"]["tokenizer_sha256"])
    root = Path(manifest["train"]["dir"])
    for name, sha in sorted(manifest["train"]["shards"].items()):
        _verified(root / name, sha)
    checked.append(f"train: {len(manifest['train']['shards'])} shards in {root}")
    return checked


# ------------------------------------------------------------------------------------------- evaluation


def _forward(module: torch.nn.Module, x: torch.Tensor, vocab_size: int) -> torch.Tensor:
    logits = module(x)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (*x.shape, vocab_size):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise Rejected(f"the model returned {shape}, expected logits of shape {(*x.shape, vocab_size)}")
    return logits.float()


@torch.no_grad()
def causality_probe(module: torch.nn.Module, x: torch.Tensor, vocab_size: int, seed: int = 0) -> dict[str, float]:
    """How much the logits up to t move when the tokens after t change (`leak`), how much a row moves when
    the other rows change (`cross_row`), and how much the same input moves between two calls (`noise`)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    base = _forward(module, x, vocab_size)
    noise = float((_forward(module, x, vocab_size) - base).abs().max())
    seq_len = x.size(1)
    leak = 0.0
    for t in sorted({int(f * (seq_len - 1)) for f in PROBE_FRACTIONS}):
        if t >= seq_len - 1:
            continue
        changed = x.clone()
        changed[:, t + 1:] = torch.randint(0, vocab_size, changed[:, t + 1:].shape, generator=gen).to(x.device)
        out = _forward(module, changed, vocab_size)
        leak = max(leak, float((out[:, :t + 1] - base[:, :t + 1]).abs().max()))
    cross_row = 0.0
    if x.size(0) > 1:
        others = x.clone()
        others[1:] = torch.randint(0, vocab_size, others[1:].shape, generator=gen).to(x.device)
        cross_row = float((_forward(module, others, vocab_size)[0] - base[0]).abs().max())
    return {"leak": leak, "cross_row": cross_row, "noise": noise,
            "tolerance": max(PROBE_FLOOR, PROBE_NOISE_FACTOR * noise)}


def windows(tokens: torch.Tensor, seq_len: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs, targets and a scored-mask of shape (rows, seq_len): consecutive windows over the stream, so
    every token after the first is a target exactly once; the tail is padded and not scored."""
    n_targets = len(tokens) - 1
    rows = math.ceil(n_targets / seq_len)
    padded = torch.full((rows * seq_len + 1,), pad_id, dtype=torch.long)
    padded[:len(tokens)] = tokens
    inputs = padded[:-1].view(rows, seq_len)
    targets = padded[1:].view(rows, seq_len)
    scored = (torch.arange(rows * seq_len) < n_targets).view(rows, seq_len)
    return inputs, targets, scored


@torch.no_grad()
def score(module: torch.nn.Module, tokens: torch.Tensor, token_bytes: torch.Tensor, *, batch: int, seq_len: int,
          pad_id: int, device: str) -> dict[str, float]:
    """Summed nats and bytes over the scored targets whose byte length is positive."""
    vocab_size = len(token_bytes)
    inputs, targets, scored = windows(tokens, seq_len, pad_id)
    token_bytes = token_bytes.to(device)
    total_nats = torch.zeros((), dtype=torch.float64, device=device)
    total_bytes = 0
    total_targets = 0
    for start in range(0, len(inputs), batch):
        x, y, m = inputs[start:start + batch], targets[start:start + batch], scored[start:start + batch]
        if len(x) < batch:  # a static-shape graph: fill the last batch with unscored copies of its first row
            fill = batch - len(x)
            x = torch.cat([x, x[:1].expand(fill, -1)])
            y = torch.cat([y, y[:1].expand(fill, -1)])
            m = torch.cat([m, torch.zeros(fill, seq_len, dtype=torch.bool)])
        x, y, m = x.to(device), y.to(device), m.to(device)
        logits = _forward(module, x, vocab_size)
        nats = F.cross_entropy(logits.view(-1, vocab_size), y.view(-1), reduction="none")
        nbytes = token_bytes[y.view(-1)] * m.view(-1)
        counted = nbytes > 0
        total_nats += (nats.double() * counted).sum()
        total_bytes += int(nbytes.sum())
        total_targets += int(counted.sum())
    return {"nats": float(total_nats), "bytes": total_bytes, "targets": total_targets}


def evaluate(model_path: Path, split: str, device: str, root: Path = HERE) -> tuple[int, dict[str, Any]]:
    """(exit status, results) of scoring the model on a split of the task at `root`."""
    manifest = read_manifest(root)
    module, meta = load_model(model_path, device)
    if meta["seq_len"] != manifest["seq_len"] or meta["vocab_size"] != manifest["vocab_size"]:
        raise Rejected(f"the model was saved for seq_len {meta['seq_len']} and vocab {meta['vocab_size']}; "
                       f"the task's are {manifest['seq_len']} and {manifest['vocab_size']}")
    tokens = load_split(manifest, split, root)
    token_bytes = load_token_bytes(manifest, root)
    batch, seq_len = meta["batch"], meta["seq_len"]
    inputs, _, _ = windows(tokens, seq_len, manifest["bos_token_id"])
    first = inputs[:batch]
    if len(first) < batch:
        first = torch.cat([first, first[:1].expand(batch - len(first), -1)])
    probe = causality_probe(module, first.to(device), manifest["vocab_size"])
    if probe["leak"] > probe["tolerance"] or probe["cross_row"] > probe["tolerance"]:
        raise Rejected(f"the model is not causal: changing later tokens moved earlier logits by up to "
                       f"{probe['leak']:.3g}, changing other rows moved a row by {probe['cross_row']:.3g} "
                       f"(tolerance {probe['tolerance']:.3g}, repeat noise {probe['noise']:.3g})")
    sums = score(module, tokens, token_bytes, batch=batch, seq_len=seq_len, pad_id=manifest["bos_token_id"],
                 device=device)
    bpb = sums["nats"] / (math.log(2) * sums["bytes"]) if sums["bytes"] > 0 else float("nan")
    return (0 if math.isfinite(bpb) else 1), {"val_bpb": bpb, "probe": probe, "meta": meta, **sums}


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="labmind's trusted evaluator for the nanochat pack")
    parser.add_argument("model", nargs="?", type=Path, help="the saved model (model.pt2)")
    parser.add_argument("--split", default="val", help="val (the metric) or holdout (the held-out check)")
    parser.add_argument("--check-data", action="store_true", help="verify the data against data/manifest.json")
    args = parser.parse_args(argv)
    if args.check_data:
        try:
            for line in check_data():
                print(f"labmind_eval: ok {line}")
        except (DataError, KeyError) as exc:
            print(f"labmind_eval: error: {exc}. Rebuild the data with `labmind pack nanochat` (same --data).",
                  file=sys.stderr)
            return 3
        return 0
    if args.model is None:
        parser.error("give the model file (model.pt2) or --check-data")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 parts of a graph run in full float32
    torch.backends.cudnn.allow_tf32 = False
    print(f"labmind_eval: split {args.split}, device {device}, torch {torch.__version__}, "
          f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')}", file=sys.stderr)
    start = time.time()
    try:
        status, result = evaluate(args.model, args.split, device)
    except Rejected as exc:
        print(f"labmind_eval: rejected: {exc}", file=sys.stderr)
        return 2
    except (DataError, KeyError) as exc:
        print(f"labmind_eval: error: the task's data: {exc}", file=sys.stderr)
        return 3
    probe = result["probe"]
    print(f"eval_targets: {result['targets']}")
    print(f"eval_bytes: {result['bytes']}")
    print(f"causal_leak: {probe['leak']:.3g}")
    print(f"causal_cross_row: {probe['cross_row']:.3g}")
    print(f"eval_repeat_noise: {probe['noise']:.3g}")
    print(f"eval_params_M: {result['meta'].get('params', 0) / 1e6:.1f}")
    print(f"eval_seconds: {time.time() - start:.1f}")
    if status != 0:
        print("labmind_eval: error: the loss is not finite (did training diverge?)", file=sys.stderr)
        print("val_bpb: nan")
        return status
    print(f"val_bpb: {result['val_bpb']:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
