#!/usr/bin/python3
"""Independent reference for GPT-2 byte-level BPE: the algorithm of OpenAI's GPT-2 encoder.py
(bytes_to_unicode, get_pairs, bpe() merging every occurrence of the lowest-rank bigram), driven by
vocab.json and merges.txt with the `regex` module -- not by rankrl's tokenizer.json reader.

Additions to encoder.py, matching what rankrl (and Hugging Face) do:
  * "<|endoftext|>" in the text is split out first and becomes id 50256;
  * bytes that are not valid UTF-8 are decoded with "surrogateescape", so the regex sees each as a
    lone surrogate (a symbol: not a letter, number or space), and encoded back to the raw byte.

Writes tests/expected/gpt2_tokens.json. Run: /usr/bin/python3 tests/reference/gpt2_tokenize_ref.py
"""
import json
import os
import sys

import regex as re

sys.path.insert(0, os.path.dirname(__file__))
from tokenize_cases import CASES, case_entry, fnv1a64, write_expectations  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "..", "shared", "data")
MODEL = os.path.join(DATA, "gpt2-random-tiny")
CORPUS = os.path.join(DATA, "wikitext2", "wiki.test.raw")
SPECIAL = b"<|endoftext|>"
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


def get_pairs(word):
    return set(zip(word, word[1:]))


class Encoder:
    def __init__(self, vocab, merges):
        self.encoder = vocab
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.byte_encoder = bytes_to_unicode()
        self.cache = {}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token)
        pairs = get_pairs(word)
        while pairs:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        self.cache[token] = word
        return word

    def encode_plain(self, data):
        text = data.decode("utf-8", "surrogateescape")
        ids = []
        for token in re.findall(PATTERN, text):
            raw = token.encode("utf-8", "surrogateescape")
            mapped = "".join(self.byte_encoder[b] for b in raw)
            ids.extend(self.encoder[t] for t in self.bpe(mapped))
        return ids

    def encode(self, data):
        ids = []
        for i, part in enumerate(data.split(SPECIAL)):
            if i > 0:
                ids.append(self.encoder[SPECIAL.decode()])
            ids.extend(self.encode_plain(part))
        return ids


def main():
    vocab = json.load(open(os.path.join(MODEL, "vocab.json"), encoding="utf-8"))
    lines = open(os.path.join(MODEL, "merges.txt"), encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1:] if line]
    enc = Encoder(vocab, merges)
    cases = [case_entry(t, enc.encode(t)) for t in CASES]
    corpus_ids = enc.encode(open(CORPUS, "rb").read())
    header = {
        "generator": "tests/reference/gpt2_tokenize_ref.py",
        "tokenizer": "gpt2-random-tiny (vocab.json + merges.txt)",
        "corpus": {
            "file": "wikitext2/wiki.test.raw",
            "note": "the whole file encoded as one text",
            "count": len(corpus_ids),
            "first_ids": corpus_ids[:64],
            "fnv1a64": str(fnv1a64(corpus_ids)),
        },
    }
    path = os.path.join(ROOT, "tests", "expected", "gpt2_tokens.json")
    write_expectations(path, header, cases)
    print("wrote", path, len(cases), "cases,", len(corpus_ids), "corpus tokens")


if __name__ == "__main__":
    main()
