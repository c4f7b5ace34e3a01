"""Tricky texts shared by the tokenizer reference scripts (bytes, so invalid UTF-8 fits)."""

CASES = [
    b"",
    b"Hello world",
    b"One day, a clever fox found a shiny key under the old oak tree.",
    b"I'm sure they'll come. DON'T stop! It's John's, we've, you'd, I'd, she'll.",
    b"He said 'hello' and 'S 'T 'RE",
    b"a  b   c    d",
    b"   leading and trailing   ",
    b" ",
    b"  ",
    b"tab\there\t\tdouble",
    b"line1\nline2\n\nline4\n",
    b"windows\r\nline\r\n\r\nend",
    b"12345 3.14 1,000,000 2024-01-01 007",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber \u00c5ngstr\u00f6m".encode(),
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \u4e2d\u6587 \ud55c\uad6d\uc5b4".encode(),
    "emoji \U0001f600\U0001f44d\U0001f3fd family \U0001f468\u200d\U0001f469\u200d\U0001f467 flag \U0001f1fa\U0001f1f8".encode(),
    "math \u2211 \u221e \u2248 \u00b1 arrows \u2192 \u21d2".encode(),
    b"<|endoftext|>",
    b"Hello<|endoftext|>world <|endoftext|> again",
    b"<s> and </s> and <unk>",
    b"Once upon a time, there was a little girl named Lily.",
    b"Lily and Ben were best friends. They liked to play in the park.\n\nOne day,",
    b"\x00nul\x01ctrl\x7f",
    b"\xff",
    b"abc\x80def",
    b"a!\xff?",
    b"\xe4\xb8",
    b"trunc \xe4\xb8 end",
    b"\xc0\xaf overlong",
    b"\xed\xa0\x80 surrogate",
    b"\xf4\x90\x80\x80 too big",
    b"caf\xc3",
    b"\xc3\xa9\x80\x80 extra continuations",
    b"\x80\x80\x80\x80\x80\x80",
    b"mixed \xe2\x82 \xf0\x9f\x98 ok",
    b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    b"the the the the the the the",
    b"  \n  \t \r\n x",
    b"http://example.com/path?q=1&r=two#frag",
    b"snake_case camelCase PascalCase kebab-case",
]


def fnv1a64(ids):
    """FNV-1a over the ids as little-endian int32: a compact fingerprint of a long id list."""
    h = 0xCBF29CE484222325
    for i in ids:
        for b in int(i).to_bytes(4, "little", signed=True):
            h ^= b
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def case_entry(text, ids):
    entry = {"hex": text.hex(), "ids": ids}
    try:
        entry["text"] = text.decode("utf-8")
    except UnicodeDecodeError:
        entry["text"] = None  # not valid UTF-8: only "hex" is authoritative
    return entry


def write_expectations(path, header, cases):
    """JSON with one case per line: readable diffs, compact file."""
    import json

    body = ",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in cases)
    head = json.dumps(header, indent=1, ensure_ascii=False)[:-2]  # drop the closing "\n}"
    with open(path, "w") as f:
        f.write(head + ',\n "cases": [\n' + body + "\n ]\n}\n")
