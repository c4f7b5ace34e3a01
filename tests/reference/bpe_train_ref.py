#!/usr/bin/python3
"""Independent reference for `rankrl train-tokenizer` (byte-level BPE training, GPT-2 style).

Deliberately naive: after every merge all pair counts are recomputed from scratch (rankrl updates
them incrementally), words are tuples of byte strings, and nothing of rankrl is used.

Rule (the same as src/train/tokenizer_trainer.h):
  * every corpus file is pre-tokenized with GPT-2's regex (`regex` module); words are counted as
    UTF-8 byte strings;
  * vocabulary: "<|endoftext|>" (id 0), the 256 single bytes (ids 1..256, byte order), then merges;
  * each round: count adjacent pairs over all words weighted by word count; pick the highest
    count; ties -> smallest left token bytes, then smallest right token bytes (Python bytes order =
    unsigned lexicographic); stop when the best count < min_frequency or the vocabulary is full;
    merge left to right, non-overlapping, in every word.
Encoding check: the learned merges applied by GPT-2's encoder.py algorithm (lowest-rank bigram
first) to a few strings, with "<|endoftext|>" (id 0) in front (the BOS the tokenizer adds).

Writes tests/expected/bpe_train_ref.json. Run: /usr/bin/python3 tests/reference/bpe_train_ref.py
"""
import json
import os
import random

import regex as re

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "expected", "bpe_train_ref.json")
PATTERN = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1))
    bs += list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def make_corpus(seed):
    """Two small deterministic 'files' of English-like text with some non-ASCII words."""
    rng = random.Random(seed)
    words = ("the a an of to in and is was it he she they we you that this with for on at by "
             "from river light water house garden morning evening king queen city road stone "
             "tree bird song night day running walked talking quickly slowly bright dark "
             "café naïve résumé Zürich 日本語 東京 emoji 🙂 Ωmega 42 1999 3.14").split()
    subjects = ["The king", "A bird", "She", "They", "We", "The old city", "You"]
    files = []
    for _ in range(2):
        lines = []
        for _ in range(120):
            sent = rng.choice(subjects) + " " + " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
            sent += rng.choice([".", "!", "?", ", and it's done.", "; they'll see."])
            lines.append(sent)
            if rng.random() < 0.15:
                lines.append("")
        files.append("\n".join(lines) + "\n")
    return files


def train(files, vocab_size, min_frequency):
    counts = {}
    for text in files:
        for m in PATTERN.findall(text):
            w = tuple(bytes([b]) for b in m.encode("utf-8"))
            counts[w] = counts.get(w, 0) + 1
    tokens = [b"<|endoftext|>"] + [bytes([b]) for b in range(256)]
    merges = []
    words = dict(counts)
    while len(tokens) < vocab_size:
        pairs = {}
        for w, c in words.items():
            for p in zip(w, w[1:]):
                pairs[p] = pairs.get(p, 0) + c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p[0], p[1]))
        if pairs[best] < min_frequency:
            break
        merges.append(best)
        new = best[0] + best[1]
        tokens.append(new)
        merged = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == best[0] and w[i + 1] == best[1]:
                    out.append(new)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + c
        words = merged
    return tokens, merges


def encode(text, tokens, merges):
    """GPT-2 encoder.py: per pre-token, repeatedly merge the lowest-rank adjacent pair."""
    ranks = {m: i for i, m in enumerate(merges)}
    ids = {t: i for i, t in enumerate(tokens)}
    out = [0]
    for piece in PATTERN.findall(text):
        word = [bytes([b]) for b in piece.encode("utf-8")]
        while len(word) > 1:
            pairs = [(ranks.get((a, b), float("inf")), i) for i, (a, b) in enumerate(zip(word, word[1:]))]
            rank, _ = min(pairs)
            if rank == float("inf"):
                break
            a, b = merges[rank]
            new, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    new.append(a + b)
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = new
        out += [ids[t] for t in word]
    return out


def main():
    files = make_corpus(5)
    b2u = bytes_to_unicode()
    show = lambda b: "".join(b2u[x] for x in b)  # noqa: E731
    samples = ["The king walked to the river.", "café naïve 日本語 🙂 it's 1999!",
               "Zürich\n\nQueen's  garden  ", "unseen words: xylophone quartz"]
    runs = []
    # (600, 2) stops on min_frequency; (400, 1) stops on the vocabulary size.
    for vocab_size, min_frequency in ((600, 2), (400, 1)):
        tokens, merges = train(files, vocab_size, min_frequency)
        runs.append({
            "vocab_size": vocab_size,
            "min_frequency": min_frequency,
            "n_tokens": len(tokens),
            "merges": [show(a) + " " + show(b) for a, b in merges],
            "encodings": [{"text": s, "ids": encode(s, tokens, merges)} for s in samples],
        })
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"files": files, "runs": runs}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: " + ", ".join(f"{len(r['merges'])} merges" for r in runs))


if __name__ == "__main__":
    main()
