#!/usr/bin/python3
"""Independent reader for the shared test checkpoints (numpy only, no rankrl code).

Writes tests/expected/checkpoint_values.json: the llama2.c header, the parameter count and a few
spot values of stories260K.bin, and spot values of gpt2-random-tiny's model.safetensors, all
under the names rankrl's loader is expected to give them. Values are float32 widened to double, so
C++ can compare them exactly.

Usage: /usr/bin/python3 tests/reference/read_checkpoints_ref.py [shared_data_dir]
"""
import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared", "data")
OUT = os.path.join(HERE, "..", "expected", "checkpoint_values.json")


def spot(name, array, indices):
    """Values of `array` at `indices` (tuples), keyed for the C++ test."""
    return {"name": name, "shape": list(array.shape),
            "points": [{"index": list(i), "value": float(array[i])} for i in indices],
            "sum": float(array.astype(np.float64).sum())}


def read_llama2c(path):
    raw = open(path, "rb").read()
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    floats = np.frombuffer(raw, dtype="<f4", offset=28)
    kv_dim = dim * kv_heads // heads
    head_size = dim // heads
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        out = floats[pos:pos + n].reshape(shape)
        pos += n
        return out

    t = {}
    t["embed"] = take(vocab, dim)
    t["rms_att"] = take(layers, dim)
    t["wq"] = take(layers, dim, dim)
    t["wk"] = take(layers, kv_dim, dim)
    t["wv"] = take(layers, kv_dim, dim)
    t["wo"] = take(layers, dim, dim)
    t["rms_ffn"] = take(layers, dim)
    t["w1"] = take(layers, hidden, dim)
    t["w2"] = take(layers, dim, hidden)
    t["w3"] = take(layers, hidden, dim)
    t["rms_final"] = take(dim)
    params = pos
    pos += seq_len * head_size  # two legacy RoPE tables of seq_len * head_size / 2
    if not shared:
        t["wcls"] = take(vocab, dim)
        params += vocab * dim
    assert pos == len(floats), "file size does not match the header"
    header = dict(dim=dim, hidden_dim=hidden, n_layers=layers, n_heads=heads, n_kv_heads=kv_heads,
                  vocab_size=vocab, seq_len=seq_len, shared_classifier=shared)
    spots = [
        spot("model.embed_tokens.weight", t["embed"], [(0, 0), (1, 5), (511, 63), (300, 17)]),
        spot("model.layers.0.input_layernorm.weight", t["rms_att"][0], [(0,), (63,)]),
        spot("model.layers.0.self_attn.q_proj.weight", t["wq"][0], [(0, 0), (0, 1), (63, 62)]),
        spot("model.layers.4.self_attn.k_proj.weight", t["wk"][4], [(31, 63), (7, 3)]),
        spot("model.layers.2.self_attn.v_proj.weight", t["wv"][2], [(10, 20)]),
        spot("model.layers.3.self_attn.o_proj.weight", t["wo"][3], [(5, 60)]),
        spot("model.layers.1.post_attention_layernorm.weight", t["rms_ffn"][1], [(12,)]),
        spot("model.layers.2.mlp.gate_proj.weight", t["w1"][2], [(171, 63), (100, 10)]),
        spot("model.layers.2.mlp.down_proj.weight", t["w2"][2], [(10, 100), (63, 171)]),
        spot("model.layers.4.mlp.up_proj.weight", t["w3"][4], [(0, 0), (171, 0)]),
        spot("model.norm.weight", t["rms_final"], [(0,), (33,)]),
    ]
    return {"header": header, "parameters": params, "tensors": spots}


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    start = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32"
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(raw[start + b:start + end], dtype="<f4").reshape(e["shape"])
    return out


def gpt2_spots(path):
    t = read_safetensors(path)
    c_attn = t["transformer.h.0.attn.c_attn.weight"]  # stored Conv1D [in, out]
    assert c_attn.shape == (2, 6)
    # rankrl returns Conv1D weights as [out, in]: index (o, i) holds stored[i, o].
    transposed = c_attn.T
    return {"tensors": [
        spot("transformer.h.0.attn.c_attn.weight", transposed,
             [(o, i) for o in range(6) for i in range(2)]),
        spot("transformer.h.0.mlp.c_proj.weight", t["transformer.h.0.mlp.c_proj.weight"].T,
             [(0, 7), (1, 0)]),
        spot("transformer.h.0.attn.c_attn.bias", t["transformer.h.0.attn.c_attn.bias"], [(5,)]),
        spot("transformer.wte.weight", t["transformer.wte.weight"], [(0, 0), (50256, 1), (1000, 0)]),
        spot("transformer.wpe.weight", t["transformer.wpe.weight"], [(1023, 1)]),
        spot("transformer.ln_f.weight", t["transformer.ln_f.weight"], [(0,), (1,)]),
    ], "parameters": int(sum(v.size for v in t.values()))}


def main():
    result = {
        "generator": "tests/reference/read_checkpoints_ref.py",
        "stories260K": read_llama2c(os.path.join(DATA, "stories260K", "stories260K.bin")),
        "gpt2-random-tiny": gpt2_spots(os.path.join(DATA, "gpt2-random-tiny", "model.safetensors")),
    }
    with open(OUT, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
