"""Pack-time edits of upstream's train.py and prepare.py (karpathy/autoresearch at 228791f).

Each edit names the upstream text it replaces by a short anchor: one whole line found by its beginning, or a
block from its first line to its last. An anchor must match exactly once, or packing stops with the edit's
name and what it looked for: an upstream that moved on is refused, never half-adapted. The edits are the
smallest that make the task run offline under labmind's evaluator; everything else (model, optimizer,
schedules, data loader, tokenizer training) stays upstream's, from the user's own checkout.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from labmind.packs import upstream
from labmind.packs.upstream import AdaptError, Edit, Pin

__all__ = ["AdaptError", "Edit"]

UPSTREAM_REPO = "karpathy/autoresearch"
UPSTREAM_COMMIT = "228791fb499afffb54b46200aca536f79142f117"
#: sha256 of the two files at UPSTREAM_COMMIT: a checkout whose files match is that commit's.
UPSTREAM_SHA256 = {
    "train.py": "2954175f4ac42ad65164aef40910ef953789abcd05a5cc886ac9ba5a00814414",
    "prepare.py": "4f2ba9cbb8ba8c4a3d35be405a913e2f3be3af9aea103ed52ef7b2a662058150",
}
#: Upstream's DEVICE_BATCH_SIZE ran out of memory on an 80 GB H100 with the torch-native attention and torch
#: 2.11 (74 GB peak in a 30 s run, out of memory in a 300 s one); 64 with the same TOTAL_BATCH_SIZE is the
#: same optimisation in 4 micro-steps instead of 2 (docs/packs/nanochat.md).
DEFAULT_DEVICE_BATCH_SIZE = 64


#: The version this pack was written for.
PIN = Pin(UPSTREAM_REPO, UPSTREAM_COMMIT, UPSTREAM_SHA256)


def apply_edits(text: str, edits: Sequence[Edit], filename: str) -> str:
    """`text` with every edit applied; AdaptError when an anchor is missing or ambiguous."""
    return upstream.apply_edits(text, edits, filename, PIN)


def train_edits(device_batch_size: int) -> list[Edit]:
    """The edits of train.py."""
    return [
        Edit("attention", "the FA3 kernel comes from the Hugging Face hub, unreachable offline: labmind_attn loads "
             "it when it can and otherwise uses torch-native attention with the same call",
             first="from kernels import get_kernel", last="fa3 = get_kernel(",
             new="import labmind_attn as fa3  # labmind: hub FA3 when it loads, else torch-native (labmind_attn.py)\n"),
        Edit("block-masks", "sliding-window masks are built before torch.compile traces the model",
             line="model.init_weights()",
             new="model.init_weights()\nfa3.prepare(model.window_sizes, MAX_SEQ_LEN, device)  # labmind: masks "
                 "before compile\n"),
        Edit("seed", "labmind gives each run its own seed (SEED); upstream fixes 42",
             first="torch.manual_seed(42)", last="torch.cuda.manual_seed(42)",
             new="seed = int(os.environ.get(\"SEED\", \"42\"))  # labmind: the run's seed\n"
                 "torch.manual_seed(seed)\ntorch.cuda.manual_seed(seed)\n"),
        Edit("total-batch-literal", "the knobs brain edits literals; 2**19 is an expression",
             line="TOTAL_BATCH_SIZE = 2**19",
             new="TOTAL_BATCH_SIZE = 524288 # ~524K tokens per optimizer step (2**19)\n"),
        Edit("device-batch", "upstream's 128 does not fit an 80 GB H100 with torch-native attention",
             line="DEVICE_BATCH_SIZE = 128",
             new=f"DEVICE_BATCH_SIZE = {device_batch_size}  # per-device batch size (reduce if OOM)\n"),
        Edit("no-eval", "the metric comes only from labmind's evaluator, which reads the saved model",
             first="# Final eval", last="    val_bpb = evaluate_bpb(",
             new="# labmind: no evaluation in the training process; labmind_eval.py scores the model saved below\n"),
        Edit("no-metric-print", "the training process prints no val_bpb of its own", line='print(f"val_bpb:',
             new=""),
        Edit("save-model", "the evaluator reads the model this writes (model.pt2)", line='print(f"depth:',
             new='print(f"depth:            {DEPTH}")\n\n'
                 "# labmind: save the model for labmind's trusted evaluator (labmind_eval.py)\n"
                 "import labmind_export\n"
                 "labmind_export.save(model, seq_len=MAX_SEQ_LEN, vocab_size=vocab_size)\n"),
    ]


def prepare_edits(data_root: Path, time_budget: int) -> list[Edit]:
    """The edits of prepare.py."""
    return [
        Edit("time-budget", "the task's training budget (--time-budget)", line="TIME_BUDGET = ",
             new=f"TIME_BUDGET = {time_budget}  # labmind: training time budget in seconds (--time-budget)\n"),
        Edit("data-root", "the pack's training shards; the validation data lives in the task, hidden from runs",
             line="CACHE_DIR = ", new=f"CACHE_DIR = {str(data_root)!r}  # labmind: the pack's training shards\n"),
        Edit("tokenizer-dir", "the task carries its own tokenizer, protected and digested",
             line="TOKENIZER_DIR = ",
             new='TOKENIZER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenizer")  '
                 "# labmind: the task's tokenizer\n"),
    ]
