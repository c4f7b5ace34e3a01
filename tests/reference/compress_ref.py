#!/usr/bin/python3
"""Independent reference for end-to-end low-rank compression of stories260K (svd, asvd, svdllm).

Reuses tests/reference/model_ref.py (llama2.c loader, tokenizer, Llama forward; verified against
the published oracle) and adds: calibration statistics of every linear layer's input, a uniform
rank plan, the three factorizations computed the textbook way in float64 (explicit S / L, no
rankrl code), and held-out perplexity of each compressed model. Writes
tests/expected/compress_ref.json. Protocol: see tests/reference/README.md ("compress_ref").

Run from the repo root:  /usr/bin/python3 tests/reference/compress_ref.py
"""
import json
import math
import os
import sys
import time
from fractions import Fraction

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_ref  # noqa: E402
from model_ref import causal_attention, rmsnorm, rope_pairs  # noqa: E402

TEXT = "tinystories/tinystories_val.txt"
BOS = 1
CTX = 256
CALIB_START, CALIB_WINDOWS = 0, 16            # ids[0:4096] -> [16, 256]
EVAL_START, EVAL_WINDOWS = 200000, 128        # ids[200000:232768] -> [128, 256]
EVAL_BATCH = 16                               # windows per forward (result does not depend on it)
KEEPS = ["0.8", "0.6", "0.4"]                 # strings: exact decimal keep fractions
MAIN_KEEP = "0.6"
ALPHA = 0.5                                   # ASVD exponent
ASVD_CLAMP_REL = 1e-6                         # s = max(s, 1e-6 * max(s))
JITTER_REL = 1e-6                             # Cholesky retry: gram + 1e-6 * mean(diag) * I
WEIGHTS = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"]
INPUT_OF = {"wq": "attn_in", "wk": "attn_in", "wv": "attn_in", "wo": "attn_out",
            "w1": "ffn_in", "w3": "ffn_in", "w2": "ffn_hidden"}


@torch.no_grad()
def llama_forward_capture(cfg, w, ids, cap):
    """Same computation as model_ref.llama_forward, recording each linear layer's input into
    cap[(layer, input_name)] as a float32 [B*T, n] tensor."""
    B, T = ids.shape
    H, KV = cfg["n_heads"], cfg["n_kv_heads"]
    hs = cfg["dim"] // H
    x = w["tok_embeddings"][ids]
    for l in range(cfg["n_layers"]):
        h = rmsnorm(x, w["rms_att"][l])
        cap[(l, "attn_in")] = h.reshape(B * T, -1)
        q = rope_pairs((h @ w["wq"][l].T).view(B, T, H, hs))
        k = rope_pairs((h @ w["wk"][l].T).view(B, T, KV, hs))
        v = (h @ w["wv"][l].T).view(B, T, KV, hs)
        k = k.repeat_interleave(H // KV, dim=2)
        v = v.repeat_interleave(H // KV, dim=2)
        o = causal_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        o = o.transpose(1, 2).reshape(B, T, -1)
        cap[(l, "attn_out")] = o.reshape(B * T, -1)
        x = x + o @ w["wo"][l].T
        h = rmsnorm(x, w["rms_ffn"][l])
        cap[(l, "ffn_in")] = h.reshape(B * T, -1)
        g = torch.nn.functional.silu(h @ w["w1"][l].T) * (h @ w["w3"][l].T)
        cap[(l, "ffn_hidden")] = g.reshape(B * T, -1)
        x = x + g @ w["w2"][l].T
    return rmsnorm(x, w["rms_final"]) @ w["wcls"].T


@torch.no_grad()
def heldout_ppl(cfg, w, windows):
    """windows: LongTensor [N, CTX]; scores tokens 1..CTX-1 of each window; float64 sums."""
    total, count = 0.0, 0
    for b in range(0, windows.shape[0], EVAL_BATCH):
        ids = windows[b:b + EVAL_BATCH]
        lp = model_ref.logprobs(model_ref.llama_forward(cfg, w, ids))
        total -= float(lp[:, :-1].gather(2, ids[:, 1:, None]).sum())
        count += ids.shape[0] * (ids.shape[1] - 1)
    return dict(nll_sum=total, tokens_scored=count, mean_nll=total / count,
                ppl=math.exp(total / count))


def rank_for(keep, m, n):
    return int(Fraction(keep) * m * n // (m + n))  # exact floor(K m n / (m + n))


def truncate(A, r):
    """Best rank-r approximation of A (float64) and the discarded sum of sigma^2."""
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    return (U[:, :r] * s[:r]) @ Vt[:r], float(np.sum(s[r:] ** 2))


def cholesky_lower(G):
    try:
        return np.linalg.cholesky(G), 0.0
    except np.linalg.LinAlgError:
        eps = JITTER_REL * float(np.mean(np.diag(G)))
        return np.linalg.cholesky(G + eps * np.eye(G.shape[0])), eps


def output_sq(D, G):
    """||D X^T||_F^2 = trace(D G D^T) for G = X^T X."""
    return float(np.sum((D @ G) * D))


def main():
    t0 = time.time()
    m = model_ref.Stories()
    cfg, w = m.cfg, m.w
    text_path = model_ref.data_path(TEXT)
    text = open(text_path, "rb").read().decode("utf-8", errors="strict")
    ids = [BOS] + m.tok.encode(text)
    print(f"tokenized: {len(ids)} ids ({time.time() - t0:.1f}s)", file=sys.stderr)
    n_calib, n_eval = CALIB_WINDOWS * CTX, EVAL_WINDOWS * CTX
    if len(ids) < EVAL_START + n_eval:
        model_ref.fail(f"only {len(ids)} tokens; need {EVAL_START + n_eval}")
    calib = torch.tensor(ids[CALIB_START:CALIB_START + n_calib]).view(CALIB_WINDOWS, CTX)
    evalw = torch.tensor(ids[EVAL_START:EVAL_START + n_eval]).view(EVAL_WINDOWS, CTX)

    # ---- calibration statistics (dense model)
    cap = {}
    logits_cap = llama_forward_capture(cfg, w, calib, cap)
    ref_logits = model_ref.llama_forward(cfg, w, calib)
    capture_forward_maxdiff = float((logits_cap - ref_logits).abs().max())
    if capture_forward_maxdiff != 0.0:
        model_ref.fail(f"capture forward differs from model_ref.llama_forward by {capture_forward_maxdiff}")
    stats = {}
    for key, X in cap.items():
        X64 = X.double().numpy()
        stats[key] = dict(X=X64, gram=X64.T @ X64,
                          abs_mean=np.abs(X64).mean(0).astype(np.float32).astype(np.float64))
    print(f"calibration done ({time.time() - t0:.1f}s)", file=sys.stderr)

    # ---- dense perplexity, cross-checked with model_ref's one-window-per-forward protocol
    dense = heldout_ppl(cfg, w, evalw)
    check = model_ref.perplexity(m, ids[EVAL_START:EVAL_START + n_eval], CTX)
    if check["n_windows"] != EVAL_WINDOWS or abs(check["nll_sum"] - dense["nll_sum"]) > 1e-6 * abs(dense["nll_sum"]):
        model_ref.fail(f"batched ppl {dense} != model_ref.perplexity {check}")
    print(f"dense ppl {dense['ppl']:.6f} ({time.time() - t0:.1f}s)", file=sys.stderr)

    # ---- factorizations
    L = cfg["n_layers"]
    ranks = {K: {} for K in KEEPS}
    for K in KEEPS:
        for name in WEIGHTS:
            mo, ni = w[name].shape[1:]
            ranks[K][name] = dict(m=mo, n=ni, r=rank_for(K, mo, ni))
    prep = {}  # per (layer, weight): float64 W, scaled matrices, inverse scalings
    jitter = []
    min_rel_eig = {}
    for l in range(L):
        for name in WEIGHTS:
            W = w[name][l].double().numpy()
            st = stats[(l, INPUT_OF[name])]
            s = st["abs_mean"] ** ALPHA
            s = np.maximum(s, ASVD_CLAMP_REL * s.max())
            Lc, eps = cholesky_lower(st["gram"])
            if eps:
                jitter.append(dict(layer=l, weight=name, jitter=eps))
            ev = np.linalg.eigvalsh(st["gram"])
            min_rel_eig[f"{l}.{INPUT_OF[name]}"] = float(ev[0] / ev[-1])
            prep[(l, name)] = dict(W=W, s=s, L=Lc, gram=st["gram"], X=st["X"])

    ppl_by_keep, err_by_keep, identity = {}, {}, None
    identity_all = 0.0  # max over svdllm layers (all keeps) of |discarded - trace(D G D^T)| / discarded
    for K in KEEPS:
        ppl_by_keep[K], err_by_keep[K] = {"dense": dense["ppl"]}, {}
        for method in ["svd", "asvd", "svdllm"]:
            wc = dict(w)
            own, outsq, frob = 0.0, 0.0, 0.0
            for name in WEIGHTS:
                stack = []
                r = ranks[K][name]["r"]
                for l in range(L):
                    p = prep[(l, name)]
                    W = p["W"]
                    if method == "svd":
                        What, d = truncate(W, r)
                    elif method == "asvd":
                        A, d = truncate(W * p["s"][None, :], r)
                        What = A / p["s"][None, :]
                    else:
                        A, d = truncate(W @ p["L"], r)
                        What = np.linalg.solve(p["L"].T, A.T).T  # A L^{-1}
                        if identity is None and K == MAIN_KEEP and name == "w2" and l == 2:
                            D = W - What
                            direct = float(np.sum((D @ p["X"].T) ** 2))
                            identity = dict(keep=float(K), layer=l, weight=name, rank=r,
                                            discarded_sigma_sq_WL=d, output_sq_direct=direct,
                                            output_sq_via_gram=output_sq(D, p["gram"]),
                                            rel_diff=abs(d - direct) / direct)
                    own += d
                    D = W - What
                    o2 = output_sq(D, p["gram"])
                    outsq += o2
                    if method == "svdllm":
                        identity_all = max(identity_all, abs(d - o2) / d)
                    frob += float(np.sum(D * D))
                    stack.append(torch.from_numpy(What.astype(np.float32)))
                wc[name] = torch.stack(stack)
            res = heldout_ppl(cfg, wc, evalw)
            ppl_by_keep[K][method] = res["ppl"]
            err_by_keep[K][method] = dict(own_metric_discarded=own, output_sq=outsq, frobenius_sq=frob,
                                          mean_nll=res["mean_nll"])
            print(f"keep {K} {method}: ppl {res['ppl']:.6f} own-metric err {own:.6g} "
                  f"({time.time() - t0:.1f}s)", file=sys.stderr)

    main_ppl = ppl_by_keep[MAIN_KEEP]
    ordering = main_ppl["svdllm"] < main_ppl["asvd"] < main_ppl["svd"]
    identity["all_svdllm_layers_max_rel_diff_via_gram"] = identity_all
    if identity["rel_diff"] > 1e-8 or identity_all > 1e-8:
        model_ref.fail(f"svdllm identity check: {identity}")
    out = dict(
        protocol=dict(
            model=model_ref.STORIES_BIN, model_sha256=model_ref.sha256(m.model_path),
            tokenizer=model_ref.STORIES_TOK, text=TEXT, text_sha256=model_ref.sha256(text_path),
            tokens="[BOS=1] + encode(whole file as one string)", n_tokens_with_bos=len(ids),
            ctx=CTX,
            calibration=dict(start=CALIB_START, end=CALIB_START + n_calib, windows=CALIB_WINDOWS,
                             positions=n_calib, model="dense",
                             gram="X^T X, float64", abs_mean="mean |x| per input channel, float64 -> float32",
                             inputs=dict(wq="rmsnorm(x)*rms_att", wk="same as wq", wv="same as wq",
                                         wo="attention output (heads concatenated)",
                                         w1="rmsnorm(x)*rms_ffn", w3="same as w1",
                                         w2="silu(w1 h) * (w3 h)")),
            heldout=dict(start=EVAL_START, end=EVAL_START + n_eval, windows=EVAL_WINDOWS,
                         tokens_scored=dense["tokens_scored"],
                         scoring="tokens 1..255 of each window given the window's preceding tokens, "
                                 "no extra BOS, positions restart at 0; mean NLL in float64; ppl = exp"),
            plan="uniform: r = floor(K*m*n/(m+n)) for every wq,wk,wv,wo,w1,w2,w3 in all layers "
                 "(W is [m=out, n=in]); computed exactly with fractions",
            keeps=[float(k) for k in KEEPS], main_keep=float(MAIN_KEEP),
            svd="U_r S_r V_r^T of W (float64 numpy SVD) -> float32",
            asvd=dict(alpha=ALPHA, s="abs_mean^alpha (abs_mean as float32 values, power in float64)",
                      clamp=f"s = max(s, {ASVD_CLAMP_REL} * max(s)) (never active here)",
                      what="trunc_r(W diag(s)) diag(s)^-1"),
            svdllm=dict(cholesky="L = lower Cholesky of gram, float64 (numpy)",
                        jitter=f"only if Cholesky fails: gram + {JITTER_REL} * mean(diag(gram)) * I",
                        jitter_applied=jitter,
                        what="trunc_r(W L) L^-1 (triangular solve, float64)"),
            compressed_model="each W replaced by the dense float32 product W_hat; rest of the model unchanged",
            forward="model_ref.llama_forward (float32), log_softmax in float64",
        ),
        ppl={"dense": dense["ppl"], "svd": main_ppl["svd"], "asvd": main_ppl["asvd"],
             "svdllm": main_ppl["svdllm"]},
        ppl_by_keep=ppl_by_keep,
        ranks={name: ranks[MAIN_KEEP][name]["r"] for name in WEIGHTS},
        ranks_by_keep={K: {name: ranks[K][name]["r"] for name in WEIGHTS} for K in KEEPS},
        shapes={name: [ranks[MAIN_KEEP][name]["m"], ranks[MAIN_KEEP][name]["n"]] for name in WEIGHTS},
        truncation_error=dict(
            note="sums over all 35 layers. own_metric_discarded: svd = discarded sigma^2 of W "
                 "(= ||W-W_hat||_F^2); asvd = discarded sigma^2 of W diag(s); svdllm = discarded "
                 "sigma^2 of W L (= ||(W-W_hat)X^T||_F^2). output_sq = trace(D gram D^T) = "
                 "||(W-W_hat)X^T||_F^2 on the calibration inputs; frobenius_sq = ||W-W_hat||_F^2.",
            by_keep=err_by_keep),
        identity_check=identity,
        dense_detail=dense,
        calibration_checks=dict(
            capture_forward_maxdiff_vs_model_ref=capture_forward_maxdiff,
            gram_trace={f"{l}.{k}": float(np.trace(stats[(l, k)]["gram"]))
                        for l in range(L) for k in ["attn_in", "attn_out", "ffn_in", "ffn_hidden"]},
            abs_mean_sum={f"{l}.{k}": float(np.sum(stats[(l, k)]["abs_mean"]))
                          for l in range(L) for k in ["attn_in", "attn_out", "ffn_in", "ffn_hidden"]},
            gram_min_over_max_eig=min_rel_eig),
        sanity=dict(ordering_svdllm_lt_asvd_lt_svd_at_main_keep=ordering),
        generator="tests/reference/compress_ref.py (numpy %s, torch %s)" % (np.__version__, torch.__version__),
    )
    model_ref.write_json("compress_ref.json", out)
    print(f"done in {time.time() - t0:.1f}s; ordering svdllm<asvd<svd at keep {MAIN_KEEP}: {ordering}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
