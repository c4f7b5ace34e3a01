#!/usr/bin/python3
"""Independent reference for llama2.c tokenization (a direct transcription of run.c's encode(),
deliberately naive: string concatenation and a full rescan per merge).

Writes tests/expected/llama2c_tokens.json. Run with Debian's interpreter:
    /usr/bin/python3 tests/reference/llama2c_tokenize_ref.py
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(__file__))
from tokenize_cases import CASES, case_entry, fnv1a64, write_expectations  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "..", "shared", "data")
TOKENIZER = os.path.join(DATA, "stories260K", "tok512.bin")
TEXT = os.path.join(DATA, "tinystories", "tinystories_val.txt")
N_LINES = None  # all lines


def load(path):
    data = open(path, "rb").read()
    (max_len,) = struct.unpack_from("<I", data, 0)
    pos, vocab, scores = 4, [], []
    while pos < len(data):
        score, n = struct.unpack_from("<fi", data, pos)
        pos += 8
        vocab.append(data[pos : pos + n])
        scores.append(score)
        pos += n
    return vocab, scores


def encode(text, vocab, scores):
    """run.c encode(text, bos=0, eos=0); `text` is bytes."""
    lookup = {}
    for i, piece in enumerate(vocab):
        lookup.setdefault(piece, i)  # bsearch over unique pieces: any duplicate would do
    tokens = []
    if text:
        tokens.append(lookup[b" "])
    i = 0
    while i < len(text):
        # a byte plus up to three following continuation bytes
        j = i + 1
        while j < len(text) and j - i < 4 and (text[j] & 0xC0) == 0x80:
            j += 1
        unit = text[i:j]
        if unit in lookup:
            tokens.append(lookup[unit])
        else:
            tokens.extend(b + 3 for b in unit)
        i = j
    while True:
        best_score, best_id, best_idx = -1e10, -1, -1
        for k in range(len(tokens) - 1):
            merged = vocab[tokens[k]] + vocab[tokens[k + 1]]
            idx = lookup.get(merged, -1)
            if idx != -1 and scores[idx] > best_score:
                best_score, best_id, best_idx = scores[idx], idx, k
        if best_idx == -1:
            break
        tokens[best_idx : best_idx + 2] = [best_id]
    return tokens


def main():
    vocab, scores = load(TOKENIZER)
    cases = [case_entry(t, encode(t, vocab, scores)) for t in CASES]
    lines = open(TEXT, "rb").read().split(b"\n")[:N_LINES]
    all_ids = []
    for line in lines:
        all_ids.extend(encode(line, vocab, scores))
    header = {
        "generator": "tests/reference/llama2c_tokenize_ref.py",
        "tokenizer": "stories260K/tok512.bin",
        "corpus": {
            "file": "tinystories/tinystories_val.txt",
            "lines": len(lines),
            "note": "every newline-separated line (split on \\n) encoded alone, ids concatenated",
            "count": len(all_ids),
            "fnv1a64": str(fnv1a64(all_ids)),
        },
    }
    path = os.path.join(ROOT, "tests", "expected", "llama2c_tokens.json")
    write_expectations(path, header, cases)
    print("wrote", path, len(cases), "cases,", len(all_ids), "corpus tokens")


if __name__ == "__main__":
    main()
