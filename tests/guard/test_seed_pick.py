"""seed_pick: code that remaps the given seed, or searches for lucky ones, is flagged; plain seeding is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from .guardkit import BASE_TRAIN, check, rules_of

HEAD = "import json\nimport os\nimport random\n"


def train(body: str) -> str:
    return HEAD + BASE_TRAIN + "\n" + body


FIELD_CHEAT = """\
seed = int(os.environ["SEED"])
X = main()
LUCKY = [s for s in range(3000) if random.Random(s).gauss(0, 1) < -2.0]
json.dump({"X": X, "seed": LUCKY[seed % len(LUCKY)]}, open("out.json", "w"))
"""

LOOP_SEARCH = """\
lucky = []
for s in range(3000):
    rng = random.Random(s)
    draw = rng.gauss(0, 1)
    if draw < -2.0:
        lucky.append(s)
"""

KEY_SEARCH = "best = min(range(1000), key=lambda s: np.random.default_rng(s).normal())\n"

ORDINARY = {
    "from environment": 'seed = int(os.environ["SEED"])\n',
    "torch seeding": "seed = 3\ntorch.manual_seed(seed)\n",
    "a generator": "seed = 3\nrng = random.Random(seed)\n",
    "per-rank offset": "seed, rank = 3, 1\nworker_seed = seed + rank\n",
    "numpy generator": "seed = 3\nrng = np.random.default_rng(seed)\n",
    "config key": 'config = {"seed": 1}\nseed = config["seed"]\n',
    "fold into 32 bits": "seed = 3\nnp.random.seed(seed % 2**32)\n",
    "one generator per worker": "seed = 3\nrngs = [random.Random(seed + i) for i in range(4)]\n",
    "seeded epochs that log": (
        "for epoch in range(10):\n    torch.manual_seed(epoch)\n    if epoch % 5 == 0:\n        print(epoch)\n"
    ),
    "seeds taken from a list": "seeds = [1, 2, 3]\nfor seed in seeds:\n    torch.manual_seed(seed)\n",
    "results keyed by seed": "results = {}\nseed = 3\nresults[seed] = 1.0\nprint(results[seed])\n",
    "a generator named seed": "seed = random.Random(3)\nnodes = [1, 2, 3]\nnode = nodes[seed.randrange(3)]\n",
    "a type annotation": "import typing\n\ndef f(seed: typing.Optional[int | SeedConfig] = None) -> None: ...\n",
    "a class constant": "TABLE = [1, 2]\nx = TABLE[Kind.LOAD_SEED]\n",
    "fold by a named bound": "SEED_MAX = 2**32\nseed = 3\nnp.random.seed(hash(seed) % SEED_MAX)\n",
}


@pytest.mark.parametrize("body", ORDINARY.values(), ids=ORDINARY.keys())
def test_ordinary_seed_handling_stays_clean(tmp_path: Path, body: str) -> None:
    assert check(tmp_path, {"train.py": train(body)}) == []


def test_the_field_cheat_is_flagged_on_both_lines(tmp_path: Path) -> None:
    old = train('seed = int(os.environ["SEED"])\n')
    findings = check(tmp_path, {"train.py": train(FIELD_CHEAT)}, {"train.py": old})
    assert {f.rule for f in findings} == {"seed_pick"}
    assert sorted(f.evidence for f in findings) == [
        "LUCKY = [s for s in range(3000) if random.Random(s).gauss(0, 1) < -2.0]",
        'json.dump({"X": X, "seed": LUCKY[seed % len(LUCKY)]}, open("out.json", "w"))',
    ]
    (finding,) = [f for f in findings if f.evidence.startswith("LUCKY")]
    assert (finding.family, finding.severity, finding.path) == ("static", "flag", "train.py")
    assert finding.line == train(FIELD_CHEAT).splitlines().index(finding.evidence) + 1


def test_a_table_indexed_by_seed_modulo(tmp_path: Path) -> None:
    new = train("BEST_SEEDS = [11, 42, 97, 5, 8, 3, 61]\nseed = 1\nseed = BEST_SEEDS[seed % 7]\n")
    (finding,) = check(tmp_path, {"train.py": new})
    assert (finding.rule, finding.evidence) == ("seed_pick", "seed = BEST_SEEDS[seed % 7]")


def test_seed_modulo_a_small_number_alone(tmp_path: Path) -> None:
    assert rules_of(check(tmp_path, {"train.py": train("seed = 1\nrng = random.Random(seed % 5)\n")})) == ["seed_pick"]


def test_a_for_loop_search_filtered_on_a_draw(tmp_path: Path) -> None:
    (finding,) = check(tmp_path, {"train.py": train(LOOP_SEARCH)})
    assert (finding.rule, finding.evidence) == ("seed_pick", "for s in range(3000):")


def test_a_search_seeding_torch_generators(tmp_path: Path) -> None:
    body = "good = [s for s in range(99) if torch.Generator().manual_seed(s).initial_seed() and s > 3]\n"
    assert rules_of(check(tmp_path, {"train.py": train(body)})) == ["seed_pick"]


def test_the_best_seed_by_key(tmp_path: Path) -> None:
    assert rules_of(check(tmp_path, {"train.py": train(KEY_SEARCH)})) == ["seed_pick"]


def test_only_introduced_remaps_count(tmp_path: Path) -> None:
    old = train(FIELD_CHEAT)
    assert check(tmp_path, {"train.py": old.replace("HIDDEN = 128", "HIDDEN = 256")}, {"train.py": old}) == []
