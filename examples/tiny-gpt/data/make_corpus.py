"""Generate the tiny-gpt corpus: English-like stories from a small probabilistic grammar.

Deterministic: the same seed always writes the same file. The corpus is committed, so runs need
neither this script nor the network; it is here so anyone can see (and regenerate) where the text
comes from (the same grammar and seed as examples/tiny-lm, run longer):

    python data/make_corpus.py            # writes data/corpus.txt

The grammar has structure at several scales, so a better model earns a clearly lower bpb: spelling
(a closed vocabulary with irregular forms), agreement ("the miller walks" / "the millers walk",
"a"/"an"), punctuation and capitals, dialogue in quotes, and paragraph topics that make some words
far likelier than others for a whole paragraph.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

SEED = 20240611
TARGET_BYTES = 1_500_000

NAMES = {
    "she": ["Mara", "Ilse", "Nadia", "Greta", "Oona", "Tamsin", "Rosa", "Edith", "Lena", "Zoë"],
    "he": ["Tobin", "Aldo", "Piotr", "Hugo", "Silas", "Emil", "Jonah", "Bram", "Otto", "René"],
}

# noun -> plural (irregular ones spelled out)
COMMON_NOUNS = {
    "friend": "friends", "stranger": "strangers", "child": "children", "woman": "women", "man": "men",
    "dog": "dogs", "letter": "letters", "lantern": "lanterns", "door": "doors", "road": "roads",
    "window": "windows", "story": "stories", "key": "keys", "box": "boxes", "bell": "bells",
}
TOPICS = {
    "village": {
        "nouns": {"miller": "millers", "baker": "bakers", "cottage": "cottages", "well": "wells",
                  "goose": "geese", "loaf": "loaves", "fence": "fences", "chimney": "chimneys",
                  "orchard": "orchards", "apple": "apples"},
        "places": ["the square", "the mill", "the bakery", "the old well", "the orchard", "the church"],
        "adjs": ["quiet", "warm", "crooked", "sleepy", "busy", "small"],
    },
    "sea": {
        "nouns": {"sailor": "sailors", "boat": "boats", "harbour": "harbours", "net": "nets",
                  "fish": "fish", "gull": "gulls", "wave": "waves", "anchor": "anchors",
                  "island": "islands", "oar": "oars"},
        "places": ["the harbour", "the pier", "the lighthouse", "the shore", "the island", "the deep water"],
        "adjs": ["salty", "grey", "wild", "calm", "wet", "endless"],
    },
    "forest": {
        "nouns": {"hunter": "hunters", "wolf": "wolves", "owl": "owls", "branch": "branches",
                  "mushroom": "mushrooms", "path": "paths", "fox": "foxes", "leaf": "leaves",
                  "stream": "streams", "oak": "oaks"},
        "places": ["the clearing", "the dark wood", "the hollow", "the old oak", "the stream", "the ridge"],
        "adjs": ["dark", "green", "ancient", "damp", "tangled", "silent"],
    },
    "market": {
        "nouns": {"merchant": "merchants", "coin": "coins", "basket": "baskets", "stall": "stalls",
                  "cheese": "cheeses", "scale": "scales", "thief": "thieves", "ribbon": "ribbons",
                  "spice": "spices", "cart": "carts"},
        "places": ["the market", "the bridge", "the fountain", "the inn", "the town gate", "the café"],
        "adjs": ["noisy", "crowded", "bright", "cheap", "expensive", "clever"],
    },
}
COMMON_ADJS = ["old", "young", "tired", "happy", "strange", "little", "careful", "honest", "brave", "red"]
ADVERBS = ["slowly", "quickly", "quietly", "carefully", "suddenly", "happily", "never", "always", "often"]

# base -> (third person singular, past)
TRANSITIVE = {
    "carry": ("carries", "carried"), "find": ("finds", "found"), "see": ("sees", "saw"),
    "open": ("opens", "opened"), "mend": ("mends", "mended"), "buy": ("buys", "bought"),
    "hide": ("hides", "hid"), "watch": ("watches", "watched"), "follow": ("follows", "followed"),
    "paint": ("paints", "painted"), "count": ("counts", "counted"), "lose": ("loses", "lost"),
}
INTRANSITIVE = {
    "walk": ("walks", "walked"), "sing": ("sings", "sang"), "sleep": ("sleeps", "slept"),
    "wait": ("waits", "waited"), "run": ("runs", "ran"), "laugh": ("laughs", "laughed"),
    "whisper": ("whispers", "whispered"), "rest": ("rests", "rested"), "go": ("goes", "went"),
}
SPEECH = ["said", "asked", "whispered", "shouted", "replied", "muttered"]
NUMBERS = ["two", "three", "four", "five", "six", "seven", "twelve", "twenty"]
TIMES = ["In the morning", "At noon", "That evening", "Before dawn", "Later", "On Sunday", "After the rain"]
PREPS = ["to", "toward", "past", "near", "behind", "across"]


class Grammar:
    def __init__(self, rng: random.Random) -> None:
        self.r = rng

    def pick(self, items):
        return self.r.choice(list(items))

    def article(self, word: str) -> str:
        return "an" if word[0] in "aeiou" else "a"

    def new_paragraph(self) -> None:
        self.topic = TOPICS[self.pick(TOPICS)]
        self.nouns = {**COMMON_NOUNS, **self.topic["nouns"], **self.topic["nouns"]}
        self.cast = [(g, self.pick(NAMES[g])) for g in self.r.sample(["she", "he", "she", "he"], 2)]
        self.tense = 0 if self.r.random() < 0.7 else 1  # 0: past, 1: present
        self.last = None  # (pronoun, name) mentioned last

    def adj(self) -> str:
        return self.pick(self.topic["adjs"] if self.r.random() < 0.6 else COMMON_ADJS)

    def noun_phrase(self, plural: bool | None = None) -> tuple[str, bool]:
        sing = self.pick(self.topic["nouns"] if self.r.random() < 0.6 else self.nouns)
        plural = self.r.random() < 0.3 if plural is None else plural
        noun = self.nouns[sing] if plural else sing
        words = [self.adj()] if self.r.random() < 0.45 else []
        if plural:
            det = self.pick(["the", "the", "some", "these", "many", self.pick(NUMBERS)])
        else:
            det = self.pick(["the", "the", "the", "a", "a", "this", "every"])
        if det == "a":
            det = self.article((words + [noun])[0])
        return " ".join([det, *words, noun]), plural

    def subject(self) -> tuple[str, bool]:
        if self.r.random() < 0.55:
            g, name = self.pick(self.cast)
            if self.last == (g, name) and self.r.random() < 0.6:
                return g, False
            self.last = (g, name)
            return name, False
        return self.noun_phrase()

    def verb(self, table, plural: bool, subj: str) -> str:
        base = self.pick(table)
        third, past = table[base]
        if self.tense == 0:
            return past
        return base if plural or subj in ("I", "you") else third

    def clause(self) -> str:
        subj, plural = self.subject()
        adv = self.pick(ADVERBS) + " " if self.r.random() < 0.2 else ""
        if self.r.random() < 0.55:
            obj, _ = self.noun_phrase()
            tail = f" {self.pick(PREPS)} {self.pick(self.topic['places'])}" if self.r.random() < 0.4 else ""
            return f"{subj} {adv}{self.verb(TRANSITIVE, plural, subj)} {obj}{tail}"
        tail = f" {self.pick(PREPS)} {self.pick(self.topic['places'])}" if self.r.random() < 0.7 else ""
        return f"{subj} {adv}{self.verb(INTRANSITIVE, plural, subj)}{tail}"

    def sentence(self) -> str:
        x = self.r.random()
        if x < 0.15:
            g, name = self.pick(self.cast)
            obj, plural = self.noun_phrase()
            be = ("are" if plural else "is")
            q = self.pick([f"Where {be} {obj}?", f"Have you seen {obj}?", f"Who took {obj}?",
                           f"We must find {obj}.", f"Look at {obj}!", f"I can hear {obj}."])
            self.last = (g, name)
            if q.endswith("."):
                q = q[:-1] + ","
            return f'"{q}" {self.pick(SPEECH)} {name}.'
        if x < 0.3:
            return f"{self.pick(TIMES)}, {self.clause()}."
        if x < 0.42:
            return f"{self.cap(self.clause())}, and {self.clause()}."
        if x < 0.5:
            return f"{self.cap(self.clause())} because {self.clause()}."
        if x < 0.56:
            a, b, c = (self.noun_phrase(plural=True)[0].split(" ", 1)[1] for _ in range(3))
            g, name = self.pick(self.cast)
            self.last = (g, name)
            v = "counted" if self.tense == 0 else "counts"
            return f"{name} {v} {a}, {b} and {c}."
        if x < 0.62:
            year = 1700 + self.r.randrange(0, 250)
            return f"In {year}, {self.clause()}."
        return self.cap(self.clause()) + "."

    @staticmethod
    def cap(text: str) -> str:
        return text[0].upper() + text[1:]

    def paragraph(self) -> str:
        self.new_paragraph()
        return " ".join(self.cap(self.sentence()) for _ in range(self.r.randint(3, 7)))


def make_corpus(seed: int = SEED, target_bytes: int = TARGET_BYTES) -> str:
    g = Grammar(random.Random(seed))
    out, size = [], 0
    while size < target_bytes:
        p = g.paragraph() + "\n"
        out.append(p)
        size += len(p.encode("utf-8"))
    return "".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("corpus.txt"))
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--bytes", type=int, default=TARGET_BYTES)
    args = ap.parse_args()
    text = make_corpus(args.seed, args.bytes)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: {len(text)} characters, {len(text.encode('utf-8'))} bytes")


if __name__ == "__main__":
    main()
