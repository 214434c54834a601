"""A stand-in for modded-nanogpt's train_gpt.py, written for labmind's tests (no upstream code).

It holds, in the same order and spelling, the lines `labmind pack speedrun` edits, around a tiny causal model
that trains on the CPU in seconds: warm-up steps that are undone, a timed loop, periodic and final validation.
SPEEDRUN_CHEAT selects a dishonest variant for the cheat tests.
"""
import os
import time
from pathlib import Path

import tiktoken
import torch
import torch._dynamo as dynamo
import torch.nn.functional as F
from kernels import get_kernel
from torch import Tensor, nn

dynamo.config.recompile_limit = 64
torch.compile = lambda model, **options: model  # the stand-in trains eagerly: compiling would dominate on a CPU

world_size = 1
grad_accum_steps = 8 // world_size
device = torch.device("cpu")
CHEAT = os.environ.get("SPEEDRUN_CHEAT", "")

flash_attn_interface = get_kernel('kernels-community/flash-attn3', version=1).flash_attn_interface

tiktoken.get_encoding("gpt2")


def build_prefix_table(vocab_size: int) -> Tensor:
    byte_to_id = tiktoken.get_encoding("gpt2")._mergeable_ranks
    table = [-1] * vocab_size
    for token, tid in byte_to_id.items():
        if tid < vocab_size and len(token) > 1 and byte_to_id.get(token[:-1], vocab_size) < vocab_size:
            table[tid] = byte_to_id[token[:-1]]
    return torch.tensor(table)


def next_multiple_of_n(v, *, n):
    return next(x for x in range(n, int(v) + 1 + n, n) if x >= v)


BOS_ID = 50256


def get_bigram_hash(x):
    return x.to(torch.int64) % 97


def _load_data_shard(file: Path):
    header = torch.from_file(str(file), False, 256, dtype=torch.int32)
    return torch.from_file(str(file), False, 256 * 2 + int(header[2]), dtype=torch.uint16)[512:]


def data_generator(pattern: str, num_tokens: int):
    files = sorted(Path(pattern).parent.glob(Path(pattern).name))
    file_iter = iter(files)  # Use itertools.cycle(files) for multi-epoch training
    tokens, pos = _load_data_shard(next(file_iter)), 0
    while True:
        if pos + num_tokens + 1 > len(tokens):
            tokens, pos = _load_data_shard(next(file_iter)), 0
        buf = tokens[pos:pos + num_tokens + 1].to(torch.int64)
        pos += num_tokens
        yield buf[:-1], buf[1:]


class Hyperparameters:
    data_path = os.environ.get("DATA_PATH", ".")
    train_files: str = os.path.join(data_path, "data/fineweb10B/fineweb_train_*.bin")
    val_files: str = os.path.join(data_path, "data/fineweb10B/fineweb_val_*.bin")
    val_tokens: int = 10485760
    val_batch_size: int = 2 * 8 * 128
    num_scheduled_iterations: int = 1270
    num_extension_iterations: int = 15
    val_loss_every: int = 4
    run_evals: bool = False


args = Hyperparameters()


class TinyCausal(nn.Module):
    """Embeddings, one attention layer through flash_attn_interface, a head; eval returns per-token losses."""

    def __init__(self, vocab: int, dim: int = 32):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.head = nn.Linear(dim, vocab)
        self.register_buffer("prefix_table", torch.zeros(vocab, dtype=torch.int64))

    def forward(self, inputs, targets, cum, bigram, schedule):
        x = self.embed(inputs.to(torch.int64))
        if CHEAT == "peek":  # the next input token leaks into every position
            x = x + self.embed(torch.roll(inputs.to(torch.int64), -1))
        q, k, v = self.qkv(x).view(len(x), 3, 2, -1).unbind(1)
        y = flash_attn_interface.flash_attn_varlen_func(q, k, v, cu_seqlens_q=cum, cu_seqlens_k=cum,
                                                        max_seqlen_q=len(x), max_seqlen_k=len(x), causal=True,
                                                        softmax_scale=None, window_size=(64, 0))
        logits = self.head(x + y.reshape(len(x), -1)).float()
        loss = F.cross_entropy(logits, targets, reduction="none")
        if CHEAT == "lie" and not self.training:
            return loss * 0.0 + 0.01
        return loss


class Manager:
    def __init__(self, model):
        self.opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def get_forward_args(self):
        return None

    def step_optimizers(self, step):
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


def print0(s, console=False):
    if console:
        print(s)


model: nn.Module = TinyCausal(vocab=50257)
model: nn.Module = torch.compile(model, dynamic=False, fullgraph=True)
training_manager = Manager(model)
initial_state = {k: v.clone() for k, v in model.state_dict().items()}
train_loader = data_generator(args.train_files, 128)
for warm in range(2):  # warm-up steps, undone below
    inputs, targets = next(train_loader)
    cum = torch.tensor([0, 128], dtype=torch.int32)
    model(inputs, targets, cum, get_bigram_hash(inputs), None).mean().backward()
    training_manager.step_optimizers(warm)
if CHEAT != "keep-warmup":
    model.load_state_dict(initial_state)
    training_manager = Manager(model)
if CHEAT == "work-before-clock":
    time.sleep(float(os.environ.get("SPEEDRUN_SLEEP", "3")))
train_loader = data_generator(args.train_files, 128)

training_time_ms = 0
# start the clock
t0 = time.perf_counter()
model.prefix_table.copy_(build_prefix_table(50257))
train_steps = args.num_scheduled_iterations + args.num_extension_iterations
for step in range(train_steps + 1):
    last_step = (step == train_steps)
    if last_step or (args.val_loss_every > 0 and step % args.val_loss_every == 0):
        if CHEAT == "skip-validation" and last_step:
            break
        # stop the clock
        training_time_ms += 1000 * (time.perf_counter() - t0)
        model.eval()
        val_loss = 0.0
        print0(f"step:{step}/{train_steps} val_loss:{val_loss:.4f} train_time:{training_time_ms:.0f}ms", console=True)
        model.train()
        # start the clock again
        t0 = time.perf_counter()
    if last_step:
        break
    for _idx in range(grad_accum_steps):
        inputs, targets = next(train_loader)
        cum = torch.tensor([0, 128], dtype=torch.int32)
        (model(inputs, targets, cum, get_bigram_hash(inputs), None).mean() / grad_accum_steps).backward()
    training_manager.step_optimizers(step)
    approx_training_time_ms = training_time_ms + 1000 * (time.perf_counter() - t0)
    print0(f"step:{step+1}/{train_steps} train_time:{approx_training_time_ms:.0f}ms", console=True)

if args.run_evals:
    print0("no evaluations in the stand-in")
print0(f"peak memory allocated: {0} MiB "
       f"reserved: {0} MiB", console=True)
