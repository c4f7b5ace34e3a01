#!/usr/bin/python3
"""Independent reference for tests/data_test.cpp -> tests/expected/data_ref.json.

  1. sha256     hashlib digests of a synthetic corpus (written by the test from this JSON) and of
                fixed strings, to check the manifest's source hashes and rankrl's SHA-256.
  2. cloze      LAMBADA-style {"context", "continuation"} items scored with stories260K as
                lm-evaluation-harness does: log-likelihood of the continuation after the context
                (trailing context whitespace moved into the continuation, as _encode_pair) and
                greedy match = every continuation token is the argmax.
  3. partial    WinoGrande-style {"context_options", "continuation", "answer"} items: each option
                context scores `" " + continuation` (target_delimiter " "); acc = argmax,
                margin = log_softmax(scores)[gold].

Uses model_ref.py (loader, tokenizer, float32 forward) and nothing from rankrl.
Usage (repo root): /usr/bin/python3 tests/reference/data_ref.py
"""
import hashlib
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_ref as mr  # noqa: E402


def synthetic_corpus():
    """12 documents separated by <|endoftext|> lines; each has 8 sentences of varied length.
    Deterministic and plain ASCII so the test can rebuild it byte for byte from the JSON."""
    names = ["Anna", "Ben", "Cara", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jill", "Kai", "Lena"]
    things = ["kite", "boat", "drum", "lamp", "cake", "sock", "bell", "frog", "rope", "coin", "vase", "tent"]
    docs = []
    for d, (n, t) in enumerate(zip(names, things)):
        sents = [f"{n} had a red {t} at home.",
                 f"Every morning {n} looked at the {t} for {d + 2} minutes.",
                 f"One day the {t} was gone and {n} felt very sad.",
                 f"{n} asked a friend to help find the {t} near the old tree {d}.",
                 f"They searched the garden, the house and the park {d + 1} times.",
                 f"At last {n} saw the {t} under a big green leaf.",
                 f"{n} laughed and held the {t} close all evening.",
                 f"From then on {n} kept the {t} in a safe box number {d * 3}."]
        # two paragraphs per document
        docs.append(" ".join(sents[:4]) + "\n\n" + " ".join(sents[4:]) + "\n")
    return "<|endoftext|>\n".join(docs)


CLOZE = [
    {"context": "Once upon a time, there was a little girl named", "continuation": " Lily"},
    {"context": "Once upon a time, there was a little", "continuation": " girl"},
    {"context": "She loved to play outside in the", "continuation": " park"},
    {"context": "One day, she saw a big, red", "continuation": " ball"},
    {"context": "The sun was shining and the birds were", "continuation": " singing"},
    {"context": "Tom and his mom went to the store to buy some", "continuation": " milk and bread"},
    {"context": "The cat said, \"Thank you!\" and they became best", "continuation": " friends"},
]

PARTIAL = [
    {"context_options": ["Lily wanted to play with the ball, but Lily", "Lily wanted to play with the ball, but the ball"],
     "continuation": "was too high.", "answer": "2"},
    {"context_options": ["Tom gave the dog a bone because the dog", "Tom gave the dog a bone because Tom"],
     "continuation": "was hungry.", "answer": "1"},
    {"context_options": ["The box was too heavy for Sue, so the box", "The box was too heavy for Sue, so Sue"],
     "continuation": "asked her dad for help.", "answer": "2"},
    {"context_options": ["Max could not find his toy because the toy", "Max could not find his toy because Max"],
     "continuation": "was under the bed.", "answer": "1"},
    {"context_options": ["The bird sang to the girl and the girl", "The bird sang to the girl and the bird", "The bird sang to the girl and the tree"],
     "continuation": "smiled and clapped her hands.", "answer": "1"},
]


def loglik(m, context, continuation):
    """lm-eval loglikelihood(context, continuation) with BOS first; returns (ll, greedy, n_tokens)."""
    bos = [mr.Llama2cTokenizer.BOS]
    ctx = context.rstrip(" \t\r\n")
    moved = context[len(ctx):]
    ctx_ids = bos + m.tok.encode(ctx)
    whole = bos + m.tok.encode(ctx + moved + continuation)
    cont = whole[len(ctx_ids):]
    seq = ctx_ids + cont
    assert len(seq) <= m.cfg["seq_len"]
    lp = mr.logprobs(m.forward(torch.tensor([seq]))[0])
    ll, greedy = 0.0, True
    for j, t in enumerate(cont):
        row = lp[len(ctx_ids) + j - 1]
        ll += float(row[t])
        greedy = greedy and int(row.argmax()) == t
    return ll, greedy, len(cont)


def main():
    m = mr.Stories()
    corpus = synthetic_corpus()
    fixed = {"": None, "abc": None, "a" * 1000: None, "x" * 55: None, "y" * 56: None, "z" * 64: None}
    sha = [{"text": t, "sha256": hashlib.sha256(t.encode()).hexdigest()} for t in fixed]

    cloze = []
    for it in CLOZE:
        ll, greedy, n = loglik(m, it["context"], it["continuation"])
        cloze.append(dict(line=it, ll=ll, greedy=greedy, n_tokens=n))
    partial = []
    for it in PARTIAL:
        gold = int(it["answer"]) - 1
        scores = [loglik(m, c, " " + it["continuation"])[0] for c in it["context_options"]]
        best = max(range(len(scores)), key=lambda k: (scores[k], -k))
        margin = float(torch.log_softmax(torch.tensor(scores, dtype=torch.float64), 0)[gold])
        partial.append(dict(line=it, gold=gold, scores=scores, correct=best == gold, margin=margin))
    out = dict(
        model=mr.STORIES_BIN, model_sha256=mr.sha256(m.model_path),
        corpus=dict(text=corpus, bytes=len(corpus.encode()), sha256=hashlib.sha256(corpus.encode()).hexdigest()),
        sha256=sha,
        cloze=dict(items=cloze, greedy_acc=sum(c["greedy"] for c in cloze) / len(cloze),
                   mean_ll=sum(c["ll"] for c in cloze) / len(cloze)),
        partial=dict(items=partial, acc=sum(p["correct"] for p in partial) / len(partial),
                     margin=sum(p["margin"] for p in partial) / len(partial)),
    )
    mr.write_json("data_ref.json", out)
    print(f"cloze greedy {out['cloze']['greedy_acc']:.3f} mean ll {out['cloze']['mean_ll']:.4f}; "
          f"partial acc {out['partial']['acc']:.3f} margin {out['partial']['margin']:.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
