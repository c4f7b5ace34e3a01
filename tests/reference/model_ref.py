#!/usr/bin/python3
"""Independent Python reference for rankrl test expectations.

Reads the shared models/data in place (../shared/data) and writes compact JSON into
tests/expected/. Depends only on numpy, torch (CPU, float32) and the standard library;
it does not use any rankrl code. Read top to bottom:

  1. file loaders      llama2.c legacy .bin, safetensors (F32/F16/BF16)
  2. tokenizer         llama2.c tok512.bin, encoding exactly as llama2.c run.c
  3. models            Llama (llama2.c layout) and GPT-2 (HF GPT2LMHeadModel) forward
  4. protocols         oracle check, perplexity windows, ranking (lm-eval style)
  5. commands          selftest | gpt2 | stories | ppl | rank   (see README.md)

Usage (from the repo root):
  /usr/bin/python3 tests/reference/model_ref.py all
"""
import argparse
import functools
import hashlib
import heapq
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.environ.get("RANKRL_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))
EXPECTED = os.path.join(REPO, "tests", "expected")

STORIES_BIN = "stories260K/stories260K.bin"
STORIES_TOK = "stories260K/tok512.bin"
ORACLE_TEXT = "One day, a clever fox found a shiny key under the old oak tree."
ORACLE_NLL = 54.404121
ORACLE_GEN = ("Once upon a time, there was a little girl named Lily. She loved to play outside in "
              "the park. One day, she saw a big, red ball. She wanted to play with it, but it was "
              "too high.")


def data_path(rel):
    p = os.path.join(DATA, rel)
    if not os.path.exists(p):
        sys.exit(f"model_ref: missing data file {p} (set RANKRL_DATA)")
    return p


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def fail(msg):
    print(f"model_ref: CHECK FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


# ----------------------------------------------------------------------------------------
# 1. loaders

def load_llama2c(path):
    """llama2.c legacy checkpoint -> (config dict, dict of float32 torch tensors)."""
    raw = open(path, "rb").read()
    dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    head_size = dim // n_heads
    kv_dim = dim * n_kv_heads // n_heads
    cfg = dict(dim=dim, hidden_dim=hidden, n_layers=n_layers, n_heads=n_heads,
               n_kv_heads=n_kv_heads, vocab_size=vocab, seq_len=seq_len, shared_classifier=shared)
    L = n_layers
    shapes = [("tok_embeddings", (vocab, dim)), ("rms_att", (L, dim)),
              ("wq", (L, dim, dim)), ("wk", (L, kv_dim, dim)), ("wv", (L, kv_dim, dim)),
              ("wo", (L, dim, dim)), ("rms_ffn", (L, dim)), ("w1", (L, hidden, dim)),
              ("w2", (L, dim, hidden)), ("w3", (L, hidden, dim)), ("rms_final", (dim,)),
              ("freq_cis_real", (seq_len * head_size // 2,)),
              ("freq_cis_imag", (seq_len * head_size // 2,))]
    if not shared:
        shapes.append(("wcls", (vocab, dim)))
    floats = np.frombuffer(raw, dtype="<f4", offset=28)
    need = sum(int(np.prod(s)) for _, s in shapes)
    if need != floats.size:
        fail(f"{path}: expected {need} floats after the header, file has {floats.size}")
    w, off = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        w[name] = torch.from_numpy(floats[off:off + n].reshape(shape).copy())
        off += n
    if shared:
        w["wcls"] = w["tok_embeddings"]
    cfg["n_params"] = sum(int(np.prod(s)) for n, s in shapes if not n.startswith("freq_cis"))
    return cfg, w


def decode_safetensors(raw):
    """bytes of a .safetensors file -> (metadata, dict name -> float32 numpy array)."""
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        buf = raw[base + b:base + e]
        dt = info["dtype"]
        if dt == "F32":
            a = np.frombuffer(buf, dtype="<f4")
        elif dt == "F16":
            a = np.frombuffer(buf, dtype="<f2").astype(np.float32)
        elif dt == "BF16":  # bf16 = upper 16 bits of an fp32
            a = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            fail(f"safetensors tensor {name}: unsupported dtype {dt}")
        out[name] = a.reshape(info["shape"]).astype(np.float32)
    return meta, out


def load_safetensors(path):
    return decode_safetensors(open(path, "rb").read())


# ----------------------------------------------------------------------------------------
# 2. llama2.c tokenizer (tokenizer.bin), encoding as in llama2.c run.c

class Llama2cTokenizer:
    BOS, EOS = 1, 2

    def __init__(self, path, vocab_size):
        raw = open(path, "rb").read()
        (self.max_token_len,) = struct.unpack("<I", raw[:4])
        self.pieces, self.scores, off = [], [], 4
        for _ in range(vocab_size):
            score, n = struct.unpack("<fi", raw[off:off + 8])
            self.pieces.append(raw[off + 8:off + 8 + n])
            self.scores.append(score)
            off += 8 + n
        # run.c looks strings up with bsearch over the sorted vocab; there are no duplicates
        self.lookup = {}
        for i, p in enumerate(self.pieces):
            if p in self.lookup:
                fail(f"duplicate tokenizer piece {p!r}")
            self.lookup[p] = i

    def initial_tokens(self, text):
        """Dummy space (non-empty text), then one token per UTF-8 code point, else its bytes+3."""
        data = text.encode("utf-8")
        toks = [self.lookup[b" "]] if data else []
        i = 0
        while i < len(data):
            j = i + 1  # a code point = lead byte + continuation bytes (10xxxxxx), max 4 bytes
            while j < len(data) and (data[j] & 0xC0) == 0x80 and j - i < 4:
                j += 1
            cp = data[i:j]
            if cp in self.lookup:
                toks.append(self.lookup[cp])
            else:
                toks.extend(b + 3 for b in cp)
            i = j
        return toks

    def encode_naive(self, text):
        """Literal run.c merge loop: O(n^2); used to cross-check encode()."""
        toks = self.initial_tokens(text)
        while True:
            best_score, best_id, best_idx = -1e10, -1, -1
            for i in range(len(toks) - 1):
                tid = self.lookup.get(self.pieces[toks[i]] + self.pieces[toks[i + 1]], -1)
                if tid != -1 and self.scores[tid] > best_score:  # strict >: leftmost wins ties
                    best_score, best_id, best_idx = self.scores[tid], tid, i
            if best_idx == -1:
                return toks
            toks[best_idx:best_idx + 2] = [best_id]

    def encode(self, text):
        """Same result as encode_naive in O(n log n): a heap of adjacent pairs keyed by
        (-score, original position of the left token); merging keeps order, so the smallest
        original position is the leftmost pair among equal scores."""
        toks = self.initial_tokens(text)
        n = len(toks)
        nxt = list(range(1, n + 1))
        prv = list(range(-1, n - 1))
        alive = [True] * n
        heap = []

        def push(i):
            j = nxt[i]
            if j < n:
                tid = self.lookup.get(self.pieces[toks[i]] + self.pieces[toks[j]])
                if tid is not None:
                    heapq.heappush(heap, (-self.scores[tid], i, toks[i], toks[j], tid))

        for i in range(n - 1):
            push(i)
        while heap:
            _, i, a, b, tid = heapq.heappop(heap)
            j = nxt[i] if alive[i] else n
            if j >= n or toks[i] != a or toks[j] != b:
                continue  # stale entry
            toks[i] = tid
            alive[j] = False
            nxt[i] = nxt[j]
            if nxt[j] < n:
                prv[nxt[j]] = i
            if prv[i] >= 0:
                push(prv[i])
            push(i)
        return [toks[i] for i in range(n) if alive[i]]

    def decode_piece(self, prev, tok):
        p = self.pieces[tok]
        if prev == self.BOS and p.startswith(b" "):
            p = p[1:]
        if len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
            p = bytes([int(p[3:5], 16)])
        return p


# ----------------------------------------------------------------------------------------
# 3. models (float32 forward; input ids [B, T] -> logits [B, T, V])

def rmsnorm(x, w, eps=1e-5):
    return w * (x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps))


def rope_pairs(x, theta=10000.0):
    """Rotate adjacent pairs (2i, 2i+1) of each head; x is [B, T, H, hs], positions 0..T-1."""
    T, hs = x.shape[1], x.shape[3]
    freq = theta ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * freq[None, :]
    cos = torch.cos(ang).float()[None, :, None, :]
    sin = torch.sin(ang).float()[None, :, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)


@functools.lru_cache(maxsize=8)
def causal_mask(T):
    """[T, T] additive mask: 0 on and below the diagonal, -inf above (future positions)."""
    return torch.full((T, T), float("-inf")).triu(1)


def causal_attention(q, k, v):
    """q, k, v: [B, H, T, hs] -> [B, H, T, hs], softmax(q k^T / sqrt(hs)) with a causal mask."""
    T, hs = q.shape[2], q.shape[3]
    att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hs)) + causal_mask(T)
    att = att.softmax(-1)
    return att @ v


def llama_forward_recording(cfg, w, ids, record=None):
    """The Llama forward; record(i, y), when given, sees every projection output y (i: its index
    in layer-major q, k, v, o, gate (w1), up (w3), down (w2) order) and returns the tensor to use."""
    B, T = ids.shape
    H, KV = cfg["n_heads"], cfg["n_kv_heads"]
    hs = cfg["dim"] // H
    seen = []

    def lin(x, weight):
        y = x @ weight.T
        if record is not None:
            y = record(len(seen), y)
        seen.append(1)
        return y

    x = w["tok_embeddings"][ids]
    for l in range(cfg["n_layers"]):
        h = rmsnorm(x, w["rms_att"][l])
        q = rope_pairs(lin(h, w["wq"][l]).view(B, T, H, hs))
        k = rope_pairs(lin(h, w["wk"][l]).view(B, T, KV, hs))
        v = lin(h, w["wv"][l]).view(B, T, KV, hs)
        k = k.repeat_interleave(H // KV, dim=2)  # query head h uses kv head h // (H/KV)
        v = v.repeat_interleave(H // KV, dim=2)
        o = causal_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        x = x + lin(o.transpose(1, 2).reshape(B, T, -1), w["wo"][l])
        h = rmsnorm(x, w["rms_ffn"][l])
        x = x + lin(torch.nn.functional.silu(lin(h, w["w1"][l])) * lin(h, w["w3"][l]), w["w2"][l])
    return rmsnorm(x, w["rms_final"]) @ w["wcls"].T


@torch.no_grad()
def llama_forward(cfg, w, ids):
    return llama_forward_recording(cfg, w, ids)


def layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


@torch.no_grad()
def gpt2_forward(cfg, w, ids):
    """HF GPT2LMHeadModel; Conv1D weights are [in, out] so y = x @ W + b."""
    p = "transformer." if "transformer.wte.weight" in w else ""
    g = lambda name: w[p + name]
    B, T = ids.shape
    H, eps = cfg["n_head"], cfg["layer_norm_epsilon"]
    D = cfg["n_embd"]
    x = g("wte.weight")[ids] + g("wpe.weight")[torch.arange(T)][None]
    for l in range(cfg["n_layer"]):
        a = f"h.{l}."
        h = layernorm(x, g(a + "ln_1.weight"), g(a + "ln_1.bias"), eps)
        qkv = h @ g(a + "attn.c_attn.weight") + g(a + "attn.c_attn.bias")
        q, k, v = (t.view(B, T, H, D // H).transpose(1, 2) for t in qkv.split(D, dim=-1))
        o = causal_attention(q, k, v).transpose(1, 2).reshape(B, T, D)
        x = x + o @ g(a + "attn.c_proj.weight") + g(a + "attn.c_proj.bias")
        h = layernorm(x, g(a + "ln_2.weight"), g(a + "ln_2.bias"), eps)
        h = gelu_new(h @ g(a + "mlp.c_fc.weight") + g(a + "mlp.c_fc.bias"))
        x = x + h @ g(a + "mlp.c_proj.weight") + g(a + "mlp.c_proj.bias")
    x = layernorm(x, g("ln_f.weight"), g("ln_f.bias"), eps)
    return x @ g("wte.weight").T


def logprobs(logits):
    """float32 logits -> float64 log-softmax over the vocabulary."""
    return torch.log_softmax(logits.double(), dim=-1)


# ----------------------------------------------------------------------------------------
# 4. protocols

class Stories:
    def __init__(self):
        self.model_path, self.tok_path = data_path(STORIES_BIN), data_path(STORIES_TOK)
        self.cfg, self.w = load_llama2c(self.model_path)
        self.tok = Llama2cTokenizer(self.tok_path, self.cfg["vocab_size"])

    def forward(self, ids):
        return llama_forward(self.cfg, self.w, ids)


def sequence_nll(m, ids):
    """Summed NLL (float64) of ids[1:] given the prefix, one sequence."""
    lp = logprobs(m.forward(torch.tensor([ids]))[0])
    t = torch.tensor(ids[1:])
    return -float(lp[:-1].gather(1, t[:, None]).sum())


def oracle_check(m):
    ids = [Llama2cTokenizer.BOS] + m.tok.encode(ORACLE_TEXT)
    if ids != [Llama2cTokenizer.BOS] + m.tok.encode_naive(ORACLE_TEXT):
        fail("fast and naive tokenizers disagree on the oracle sentence")
    nll = sequence_nll(m, ids)
    if len(ids) != 35:
        fail(f"oracle sentence: {len(ids)} tokens, expected 35")
    if abs(nll - ORACLE_NLL) > 1e-4:
        fail(f"oracle NLL {nll:.6f} != {ORACLE_NLL}")
    # greedy generation from BOS, stopping at BOS as run.c does
    gen, out = [Llama2cTokenizer.BOS], b""
    while len(gen) < 120:
        nxt = int(m.forward(torch.tensor([gen]))[0, -1].argmax())
        if nxt == Llama2cTokenizer.BOS:
            break
        out += m.tok.decode_piece(gen[-1], nxt)
        gen.append(nxt)
    text = out.decode("utf-8", errors="replace")
    if not text.startswith(ORACLE_GEN):
        fail(f"greedy generation does not start with the oracle text: {text[:200]!r}")
    return dict(text=ORACLE_TEXT, ids=ids, n_tokens=len(ids), n_predictions=len(ids) - 1,
                nll_sum=nll, mean_nll=nll / (len(ids) - 1), ppl=math.exp(nll / (len(ids) - 1)),
                oracle_nll_sum=ORACLE_NLL, abs_err=abs(nll - ORACLE_NLL),
                greedy_ids=gen[:61], greedy_text_prefix=text[:len(ORACLE_GEN)],
                greedy_matches_oracle=True)


def perplexity(m, tokens, ctx):
    """Non-overlapping windows of ctx tokens; score all but each window's first token.
    One window per forward (batching is slower on this small CPU model)."""
    total, count, n_windows = 0.0, 0, 0
    for s in range(0, len(tokens), ctx):
        ids = torch.tensor([tokens[s:s + ctx]])
        n_windows += 1
        if ids.shape[1] < 2:
            continue  # a 1-token window scores nothing
        lp = logprobs(m.forward(ids))
        total -= float(lp[:, :-1].gather(2, ids[:, 1:, None]).sum())
        count += ids.shape[1] - 1
    return dict(n_windows=n_windows, tokens_scored=count, nll_sum=total,
                mean_nll=total / count, ppl=math.exp(total / count))


def ppl_file(m, path, ctx, max_bytes=None):
    raw = open(path, "rb").read()
    n = len(raw) if max_bytes is None else min(max_bytes, len(raw))
    while n > 0 and n < len(raw) and (raw[n] & 0xC0) == 0x80:
        n -= 1  # do not cut inside a UTF-8 sequence
    text = raw[:n].decode("utf-8", errors="strict")
    tokens = [Llama2cTokenizer.BOS] + m.tok.encode(text)
    r = dict(file=os.path.relpath(path, DATA), file_sha256=sha256(path), bytes_used=n,
             whole_file=(n == len(raw)), ctx=ctx, bos=True, n_tokens_with_bos=len(tokens))
    r.update(perplexity(m, tokens, ctx))
    return r


def read_task(path, n=None):
    items = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
    return items[:n] if n else items


def read_piqa_original(path, labels_path, n=None, harness_style=False):
    """Original PIQA: query = goal, choices = [sol1, sol2]. harness_style=True rebuilds the
    piqa.jsonl form instead: query = "Question: " + goal + "\\n", choices stripped."""
    golds = [int(x) for x in open(labels_path).read().split()]
    items = []
    for line, gold in zip(open(path, encoding="utf-8"), golds):
        d = json.loads(line)
        if harness_style:
            items.append(dict(query="Question: " + d["goal"] + "\n",
                              choices=[d["sol1"].strip(), d["sol2"].strip()], gold=gold))
        else:
            items.append(dict(query=d["goal"], choices=[d["sol1"], d["sol2"]], gold=gold))
    return items[:n] if n else items


def argmax_first(xs):
    best = 0
    for i, x in enumerate(xs):
        if x > xs[best]:
            best = i
    return best


def score_item(m, item, max_len):
    """Summed log-prob of each choice's continuation tokens (lm-eval-harness style)."""
    bos = [Llama2cTokenizer.BOS]
    # lm-eval-harness _encode_pair: trailing whitespace of the context moves to the continuation.
    context = item["query"].rstrip(" \t\r\n")
    moved = item["query"][len(context):]
    ctx_ids = bos + m.tok.encode(context)
    seqs, conts, info = [], [], dict(truncated=0, ctx_not_prefix=0)
    for choice in item["choices"]:
        whole = bos + m.tok.encode(context + moved + " " + choice)
        cont = whole[len(ctx_ids):]
        if whole[:len(ctx_ids)] != ctx_ids:
            info["ctx_not_prefix"] += 1
        seq = ctx_ids + cont
        if len(seq) > max_len:
            seq = seq[-max_len:]
            info["truncated"] += 1
        seqs.append(seq)
        conts.append(cont)
    T = max(len(s) for s in seqs)
    ids = torch.tensor([s + [0] * (T - len(s)) for s in seqs])  # right padding: causal-safe
    lp = logprobs(m.forward(ids))
    scores = []
    for b, (seq, cont) in enumerate(zip(seqs, conts)):
        n = min(len(cont), len(seq) - 1)  # can only score tokens that have a predecessor
        pos = torch.arange(len(seq) - n, len(seq))
        scores.append(float(lp[b, pos - 1, torch.tensor(seq[len(seq) - n:])].sum()))
    return scores, ctx_ids, conts, info


def rank_task(m, items, max_len, n_debug=5):
    acc = acc_norm = margin = 0.0
    truncated_items = ctx_not_prefix = 0
    debug = []
    for k, it in enumerate(items):
        scores, ctx_ids, conts, info = score_item(m, it, max_len)
        lens = [len(c.encode("utf-8")) for c in it["choices"]]
        acc += argmax_first(scores) == it["gold"]
        acc_norm += argmax_first([s / L for s, L in zip(scores, lens)]) == it["gold"]
        margin += float(torch.log_softmax(torch.tensor(scores, dtype=torch.float64), 0)[it["gold"]])
        truncated_items += info["truncated"] > 0
        ctx_not_prefix += info["ctx_not_prefix"]
        if k < n_debug:
            debug.append(dict(index=k, gold=it["gold"], scores=scores, choice_bytes=lens,
                              n_ctx_tokens=len(ctx_ids), n_cont_tokens=[len(c) for c in conts],
                              ctx_ids=ctx_ids, cont_ids=conts))
    n = len(items)
    return dict(items=n, acc=acc / n, acc_norm=acc_norm / n, margin=margin / n,
                truncated_items=truncated_items, choices_where_ctx_not_prefix=ctx_not_prefix,
                first_items=debug)


# ----------------------------------------------------------------------------------------
# 5. commands

def write_json(name, obj):
    os.makedirs(EXPECTED, exist_ok=True)
    path = os.path.join(EXPECTED, name)
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")
    os.replace(path + ".tmp", path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)", file=sys.stderr)


def cmd_selftest(args):
    """Cross-checks that do not depend on the oracle: tokenizer fast == naive, dtypes."""
    m = Stories()
    texts = ["", " ", "a", "Hello world!", "  two  spaces\n\nnew lines\n", "caf\u00e9 \u00fcber \u2014 "
             "\U0001F600 \u4e2d\u6587", "<0x0A> <s> </s>"]
    raw = open(data_path("tinystories/tinystories_val.txt"), "rb").read()
    texts.append(raw[:3000].decode("utf-8"))
    for it in read_task(data_path("tasks/piqa.jsonl"), 20) + read_task(data_path("tasks/arc_easy.jsonl"), 20):
        texts += [it["query"] + " " + c for c in it["choices"]]
    for t in texts:
        if m.tok.encode(t) != m.tok.encode_naive(t):
            fail(f"fast/naive tokenizer mismatch on {t[:60]!r}")
    # safetensors dtypes: F16 and BF16 of exactly representable values
    vals = np.array([1.0, -2.5, 0.15625, -1024.0], dtype=np.float32)
    f16 = vals.astype("<f2").tobytes()
    bf16 = (vals.view(np.uint32) >> 16).astype("<u2").tobytes()
    hdr = json.dumps({"a": dict(dtype="F16", shape=[2, 2], data_offsets=[0, 8]),
                      "b": dict(dtype="BF16", shape=[4], data_offsets=[8, 16]),
                      "__metadata__": {"format": "pt"}}).encode()
    _, t = decode_safetensors(struct.pack("<Q", len(hdr)) + hdr + f16 + bf16)
    if not (np.array_equal(t["a"].ravel(), vals) and np.array_equal(t["b"], vals)):
        fail("safetensors F16/BF16 decoding")
    print(f"selftest ok: {len(texts)} tokenizer strings, F16/BF16 decoding", file=sys.stderr)
    return [dict(text=s, ids=m.tok.encode(s)) for s in texts[:7]]


def cmd_gpt2(args):
    d = data_path("gpt2-random-tiny")
    cfg = json.load(open(os.path.join(d, "config.json")))
    _, arrays = load_safetensors(os.path.join(d, "model.safetensors"))
    w = {k: torch.from_numpy(v) for k, v in arrays.items()}
    ids = [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13, 50256, 0, 1, 50000]
    logits = gpt2_forward(cfg, w, torch.tensor([ids]))[0]
    lse = torch.logsumexp(logits.double(), dim=-1)
    f = lambda x: float("%.9g" % x)
    write_json("gpt2_logits.json", dict(
        model="gpt2-random-tiny/model.safetensors",
        model_sha256=sha256(os.path.join(d, "model.safetensors")),
        config=dict(n_embd=cfg["n_embd"], n_layer=cfg["n_layer"], n_head=cfg["n_head"],
                    vocab_size=cfg["vocab_size"], layer_norm_epsilon=cfg["layer_norm_epsilon"],
                    activation_function=cfg["activation_function"]),
        tensors={k: list(v.shape) for k, v in sorted(arrays.items())},
        input_ids=ids, vocab_slice=[0, 64],
        logits_first64=[[f(x) for x in row[:64].tolist()] for row in logits],
        logsumexp=[f(x) for x in lse.tolist()],
        argmax=[int(x) for x in logits.argmax(-1)],
        top1_minus_top2=[f(x) for x in (lambda t: t[:, 0] - t[:, 1])(logits.topk(2).values).tolist()],
        note="float32 forward; logsumexp over the full vocabulary in float64"))


def cmd_stories(args):
    t0 = time.time()
    tok_cases = cmd_selftest(args)
    m = Stories()
    out = dict(model=STORIES_BIN, model_sha256=sha256(m.model_path), tokenizer=STORIES_TOK,
               tokenizer_sha256=sha256(m.tok_path), config=m.cfg, tokenizer_cases=tok_cases)
    out["oracle"] = oracle_check(m)
    print(f"oracle ok: nll {out['oracle']['nll_sum']:.6f} ({time.time() - t0:.1f}s)", file=sys.stderr)
    text = data_path("tinystories/tinystories_val.txt")
    out["perplexity"] = []
    for ctx, max_bytes in [(256, None), (256, 20000), (512, None)]:
        t1 = time.time()
        r = ppl_file(m, text, ctx, max_bytes)
        print(f"ppl ctx {ctx} bytes {r['bytes_used']}: tokens {r['tokens_scored']} ppl {r['ppl']:.6f} "
              f"({time.time() - t1:.1f}s)", file=sys.stderr)
        out["perplexity"].append(r)
    max_len = m.cfg["seq_len"]
    n = args.n
    tasks = [("piqa", "tasks/piqa.jsonl", lambda: read_task(data_path("tasks/piqa.jsonl"), n)),
             ("arc_easy", "tasks/arc_easy.jsonl", lambda: read_task(data_path("tasks/arc_easy.jsonl"), n)),
             ("piqa_original", "tasks/piqa_valid_original.jsonl (query=goal, choices=[sol1,sol2])",
              lambda: read_piqa_original(data_path("tasks/piqa_valid_original.jsonl"),
                                         data_path("tasks/piqa_valid_original-labels.lst"), n)),
             ("piqa_original_as_piqa_jsonl",
              "tasks/piqa_valid_original.jsonl (query='Question: '+goal+'\\n', choices stripped)",
              lambda: read_piqa_original(data_path("tasks/piqa_valid_original.jsonl"),
                                         data_path("tasks/piqa_valid_original-labels.lst"), n,
                                         harness_style=True))]
    out["ranking"] = {}
    for name, src, load in tasks:
        t1 = time.time()
        r = dict(source=src, first_n=n, max_len=max_len, bos=True, delimiter=" ",
                 norm="choice utf-8 bytes without the leading space")
        r.update(rank_task(m, load(), max_len))
        print(f"rank {name}: acc {r['acc']:.4f} acc_norm {r['acc_norm']:.4f} margin "
              f"{r['margin']:.6f} trunc {r['truncated_items']} ({time.time() - t1:.1f}s)", file=sys.stderr)
        out["ranking"][name] = r
    a, b = out["ranking"]["piqa"], out["ranking"]["piqa_original_as_piqa_jsonl"]
    out["ranking"]["piqa_jsonl_equals_original_rebuilt"] = (
        a["acc"] == b["acc"] and a["acc_norm"] == b["acc_norm"] and a["margin"] == b["margin"])
    write_json("stories260k_ref.json", out)
    print(f"stories done in {time.time() - t0:.1f}s", file=sys.stderr)


def cmd_ppl(args):
    m = Stories()
    print(json.dumps(ppl_file(m, args.file, args.ctx, args.max_bytes)))


def cmd_rank(args):
    m = Stories()
    r = rank_task(m, read_task(args.file, args.n), m.cfg["seq_len"], n_debug=0)
    print(json.dumps(r))


def cmd_outgram(args):
    """Output-gradient Grams (rankrl calibrate's LinearStats::out_gram): the first 512 tokens (BOS
    first) of tinystories_val in windows of 128; per window the gradient of its mean next-token NLL
    at every projection output, times its predicted tokens (len-1), summed as g g^T over tokens and
    divided by N^2 (N = all predicted tokens): the gradient of the whole text's mean NLL."""
    m = Stories()
    text = open(data_path("tinystories/tinystories_val.txt"), encoding="utf-8").read()
    tokens = ([Llama2cTokenizer.BOS] + m.tok.encode(text))[:512]
    ctx, n_pred, grams = 128, 0, {}
    for s in range(0, len(tokens), ctx):
        ids = torch.tensor([tokens[s:s + ctx]])
        T = ids.shape[1]
        outs = {}

        def keep(i, y):  # a zero probe added to the output: its gradient is the output's
            outs[i] = torch.zeros_like(y, requires_grad=True)
            return y + outs[i]

        with torch.enable_grad():
            logits = llama_forward_recording(m.cfg, m.w, ids, keep)
            loss = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:])
            loss.backward()
        for i, y in outs.items():
            g = y.grad.reshape(-1, y.shape[-1]).double() * (T - 1)
            grams[i] = grams.get(i, 0) + g.T @ g
        n_pred += T - 1
    out = dict(model=STORIES_BIN, tokens=len(tokens), ctx=ctx, predicted=n_pred, weights={})
    for i in (0, 6, 11, 20, 34):  # L0 q, L0 down, L1 gate, L2 down, L4 down
        G = grams[i] / (n_pred * n_pred)
        out["weights"][str(i)] = dict(shape=list(G.shape), trace=float(G.trace()), sum=float(G.sum()),
                                      block=[[float(G[r, c]) for c in range(3)] for r in range(3)])
    write_json("outgram_ref.json", out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("selftest")
    sub.add_parser("gpt2")
    sub.add_parser("outgram")
    s = sub.add_parser("stories")
    s.add_argument("--n", type=int, default=200, help="ranking items per task")
    a = sub.add_parser("all")
    a.add_argument("--n", type=int, default=200)
    p = sub.add_parser("ppl")
    p.add_argument("file")
    p.add_argument("--ctx", type=int, default=256)
    p.add_argument("--max-bytes", type=int, default=None)
    r = sub.add_parser("rank")
    r.add_argument("file")
    r.add_argument("--n", type=int, default=None)
    args = ap.parse_args()
    if args.cmd == "all":
        cmd_gpt2(args)
        cmd_stories(args)
    else:
        dict(selftest=cmd_selftest, gpt2=cmd_gpt2, stories=cmd_stories, outgram=cmd_outgram,
             ppl=cmd_ppl, rank=cmd_rank)[args.cmd](args)


if __name__ == "__main__":
    main()
