"""Pack-time edits of upstream's train_gpt.py (KellerJordan/modded-nanogpt at f411b3d).

Each edit names the upstream text it replaces by an anchor (a whole line by its beginning, or a block from
its first line to its last) and must match exactly once, or packing stops naming the edit: an upstream that
moved on is refused, never half-adapted. The edits hand the clock and the validation to labmind's harness
(labmind_speedrun.py), load attention through labmind_attn.py, seed the run, and point the data at the pack's
shards; the model, optimizer, schedules, kernels and training data loader stay upstream's, from the user's
own checkout.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from labmind.packs import upstream
from labmind.packs.upstream import AdaptError, Edit, Pin

__all__ = ["AdaptError", "Edit"]

UPSTREAM_REPO = "KellerJordan/modded-nanogpt"
UPSTREAM_COMMIT = "f411b3d346aa52d3504324ca93c230fd84c6c07f"
#: sha256 of upstream's files at UPSTREAM_COMMIT: a checkout whose files match is that commit's.
UPSTREAM_SHA256 = {
    "train_gpt.py": "5afd951e0cde5e42c3e4e25a39288685f62aae13bd0d833a9a27de84f852d232",
    "triton_kernels.py": "2d9ed28c840e872ab4a364596bc2f315eeeccffd1418ab5edd1c040513b6dc79",
    "dc_triton_kernels.py": "3fca1f77b4b4df558c46de84972d32839ae5dff8c8fbe7e3d0ea14168f67b8da",
}
#: Upstream's fixed validation size.
UPSTREAM_VAL_TOKENS = 10485760
UPSTREAM_ITERATIONS = (1270, 15)


#: The version this pack was written for.
PIN = Pin(UPSTREAM_REPO, UPSTREAM_COMMIT, UPSTREAM_SHA256)


@dataclass(frozen=True)
class EditPlan:
    """What the edits need to know: the data root, the validation size, the schedule length."""

    data_root: str
    val_tokens: int
    iterations: tuple[int, int] = UPSTREAM_ITERATIONS


def val_batch_size(text: str) -> int:
    """The validation batch (tokens per validation step, all ranks) that train_gpt.py declares: the scored
    tokens must be a whole number of them."""
    match = re.search(r"^    val_batch_size: int = ([\d\s*]+?)\s*(#.*)?$", text, re.MULTILINE)
    if match is None:
        raise AdaptError("train_gpt.py: no `val_batch_size: int = <product of integers>` in Hyperparameters")
    return math.prod(int(f) for f in match.group(1).split("*"))


def apply_edits(text: str, edits: Sequence[Edit], filename: str) -> str:
    """`text` with every edit applied; AdaptError when an anchor is missing or ambiguous."""
    return upstream.apply_edits(text, edits, filename, PIN)


_SCORE_FN = '''\
def _labmind_score(inputs, targets):
    # labmind: the harness feeds the validation tokens (CPU tensors) and averages the per-token losses this
    # returns; the model's arguments are built as upstream's validation loader built them.
    n = inputs.numel()
    starts = torch.nonzero(inputs == BOS_ID)[:, 0]
    cum = torch.full((next_multiple_of_n(n // 300, n=128),), n)
    cum[0] = 0
    cum[1:len(starts) + 1] = starts
    bigram = get_bigram_hash(inputs)
    return model(inputs.to(device=device), targets.to(device=device), cum.to(dtype=torch.int32, device=device),
                 bigram.to(device=device), training_manager.get_forward_args())

'''


def train_edits(plan: EditPlan) -> list[Edit]:
    """The edits of train_gpt.py."""
    scheduled, extension = plan.iterations
    return [
        Edit("harness-import", "the clock and the validation are labmind's (labmind_speedrun.py); attention comes "
             "from labmind_attn.py", line="from kernels import get_kernel",
             new="import labmind_attn  # labmind: the hub's FA3 when it loads, else torch-native (labmind_attn.py)\n"
                 "import labmind_speedrun  # labmind: clock, validation and result (protected)\n"
                 "labmind_clock = labmind_speedrun.clock\n"),
        Edit("attention", "the FA3 kernel is downloaded from the hub at run time, which offline machines cannot do; "
             "labmind_attn keeps its flash_attn_varlen_func call", line="flash_attn_interface = get_kernel(",
             new="flash_attn_interface = labmind_attn  # labmind: was get_kernel('kernels-community/flash-attn3')\n"),
        Edit("seed", "labmind gives each run its own seed (SEED); upstream leaves initialisation unseeded",
             line="dynamo.config.recompile_limit = 64",
             new="dynamo.config.recompile_limit = 64\n"
                 "torch.manual_seed(int(os.environ.get(\"SEED\", \"0\")))  # labmind: the run's seed\n"),
        Edit("tokenizer-warm", "the prefix table comes from the task's tokenizer (GPT-2's needs a download)",
             line='tiktoken.get_encoding("gpt2")',
             new="labmind_speedrun.tokenizer_ranks()  # labmind: was tiktoken.get_encoding(\"gpt2\")\n"),
        Edit("tokenizer-ranks", "the prefix table comes from the task's tokenizer",
             line="    byte_to_id = tiktoken.get_encoding",
             new="    byte_to_id = labmind_speedrun.tokenizer_ranks()  # labmind: the task's tokenizer\n"),
        Edit("data-cycle", "a substitute corpus can be smaller than a run consumes; upstream's own comment names "
             "itertools.cycle for multi-epoch training (no effect when the shards suffice)",
             line="    file_iter = iter(files)",
             new="    import itertools  # labmind: multi-epoch when the shards run out\n"
                 "    file_iter = itertools.cycle(files)\n"),
        Edit("data-root", "the pack's training shards", line='    data_path = os.environ.get("DATA_PATH", ".")',
             new=f"    data_path = labmind_speedrun.training_data({plan.data_root!r})  # labmind: the pack's shards\n"),
        Edit("val-files", "warm-up compiles the evaluation graph on the task's validation stream",
             line="    val_files: str =",
             new='    val_files: str = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data/val.bin")  '
                 "# labmind: the task's stream\n"),
        Edit("val-tokens", "the validation size of the task (upstream: 10485760 FineWeb tokens)",
             line="    val_tokens: int =",
             new=f"    val_tokens: int = {plan.val_tokens}  # labmind: fixed by the pack (labmind_speedrun.py)\n"),
        Edit("iterations", "the schedule's length (--iterations; upstream 1270 + 15)",
             first="    num_scheduled_iterations: int =", last="    num_extension_iterations: int =",
             new=f"    num_scheduled_iterations: int = {scheduled}  # number of steps to complete lr and ws schedule\n"
                 f"    num_extension_iterations: int = {extension}  # steps at final lr and ws\n"),
        Edit("clock-initial", "the harness keeps the freshly built parameters: the clock starts only from them",
             line="model: nn.Module = torch.compile(model",
             new="labmind_clock.initial(model)  # labmind: parameters before compilation and warm-up\n"
                 "model: nn.Module = torch.compile(model, dynamic=False, fullgraph=True)\n"),
        Edit("clock-start", "labmind's clock starts the timed phase (and checks that warm-up was undone)",
             first="training_time_ms = 0", last="t0 = time.perf_counter()",
             new=_SCORE_FN + "labmind_clock.start(model)  # labmind: start the clock\n"),
        Edit("validation", "the harness feeds the validation tokens and averages the losses, with the clock paused",
             first="        # stop the clock", last="        t0 = time.perf_counter()",
             new="        labmind_clock.pause()  # labmind: the clock stops for validation\n"
                 "        model.eval()\n"
                 "        val_loss = labmind_speedrun.validate(_labmind_score, window=args.val_batch_size // "
                 "(grad_accum_steps * world_size), final=last_step)\n"
                 "        print0(f\"step:{step}/{train_steps} val_loss:{val_loss:.4f} train_time:"
                 "{1000 * labmind_clock.elapsed_s:.0f}ms step_avg:{1000 * labmind_clock.elapsed_s / max(step, 1):.2f}"
                 "ms\", console=True)\n"
                 "        model.train()\n"
                 "        if not last_step:\n"
                 "            labmind_clock.resume()\n"),
        Edit("step-log", "the step log reads labmind's clock", line="    approx_training_time_ms = ",
             new="    approx_training_time_ms = 1000 * labmind_clock.elapsed()\n"),
        Edit("finish", "the harness writes the run's result for labmind's evaluator", line="if args.run_evals:",
             new="labmind_speedrun.finish(steps=train_steps)  # labmind: the result for the evaluator\n"
                 "if args.run_evals:\n"),
    ]
