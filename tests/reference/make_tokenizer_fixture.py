#!/usr/bin/env python3
"""Build tests/fixtures/tokenizer_smollm2.jsonl: varied text lines and the token
ids llama.cpp's own tokenizer gives them on the same GGUF.

Run once, from the repository root (needs a llama.cpp build from the
llama-cpp-python sdist, see README):
    python3 tests/reference/make_tokenizer_fixture.py \
        --llama-tokenize /path/to/llama.cpp/build/bin/llama-tokenize \
        --model models/SmolLM2-135M-Instruct.Q4_1.gguf

Another model needs its path and an output path. The code lines are sampled
from src/ as it is when the script runs, so --lines-from reuses the exact lines
of an existing fixture instead; the optional gemma3 model (models/fetch.sh
--optional gemma3) gets the SmolLM2 fixture's lines:
    python3 tests/reference/make_tokenizer_fixture.py \
        --llama-tokenize /path/to/llama.cpp/build/bin/llama-tokenize \
        --model models/gemma-3-270m-q4_k_m.gguf --out tests/fixtures/tokenizer_gemma3.jsonl \
        --lines-from tests/fixtures/tokenizer_smollm2.jsonl

The lines are deterministic (seeded) and mix prose, code, CJK, emoji (with ZWJ
sequences and skin tones), runs of spaces/tabs/newlines, long numbers,
contractions, accented and non-Latin scripts.
"""
import argparse
import glob
import json
import os
import random
import subprocess
import tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--llama-tokenize", required=True)
DEFAULT_MODEL = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
ap.add_argument("--model", default=DEFAULT_MODEL, help="GGUF file (default: %(default)s)")
ap.add_argument("--out", help="fixture to write (default: tests/fixtures/tokenizer_smollm2.jsonl, "
                "for the default model only)")
ap.add_argument("--eval", default="../shared/eval/msmarco/corpus.jsonl")
ap.add_argument("--lines-from", help="take the text lines from this fixture instead of making them")
args = ap.parse_args()
if args.out is None:
    if os.path.basename(args.model) != os.path.basename(DEFAULT_MODEL):
        ap.error("--out is required for a model other than SmolLM2 "
                 "(the default output is the SmolLM2 fixture)")
    args.out = "tests/fixtures/tokenizer_smollm2.jsonl"

def make_lines():
    rng = random.Random(20261121)
    lines = []

    # Prose: sentences from a public passage set.
    with open(args.eval, encoding="utf-8") as f:
        for i, row in enumerate(f):
            if i >= 700:
                break
            text = json.loads(row)["text"]
            words = text.split(" ")
            start = rng.randrange(0, max(1, len(words) - 10))
            lines.append(" ".join(words[start:start + rng.randrange(5, 40)]))

    # Code, with its indentation, from this repository.
    code = []
    for path in sorted(glob.glob("src/**/*.rs", recursive=True)):
        with open(path, encoding="utf-8") as f:
            code.extend(l.rstrip("\n") for l in f if l.strip())
    lines.extend(rng.sample(code, 600))
    for _ in range(60):
        k = rng.randrange(2, 6)
        i = rng.randrange(0, len(code) - k)
        lines.append("\n".join(code[i:i + k]))

    cjk_sentences = [
        "你好，世界！今天天气很好。", "数据保护是每个人的责任。", "请在接触病人前洗手。",
        "日本語のテキストを正しく分割できますか？", "東京都は日本の首都です。", "ひらがなとカタカナ、そして漢字。",
        "안녕하세요, 만나서 반갑습니다.", "한국어 문장도 토큰화해야 합니다.", "年假为二十八天，包括公共假日。",
    ]
    def rand_chars(ranges, n):
        return "".join(chr(rng.randrange(a, b)) for a, b in [rng.choice(ranges) for _ in range(n)])
    for _ in range(300):
        s = rng.choice(cjk_sentences)
        if rng.random() < 0.5:
            s += rand_chars([(0x4E00, 0x9FFF), (0x3040, 0x309F), (0xAC00, 0xD7A3), (0x30A0, 0x30FF)], rng.randrange(1, 12))
        if rng.random() < 0.3:
            s = "Mixed English and " + s + " end."
        lines.append(s)

    emoji = ["😀", "🎉", "👍", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇬🇧", "🇯🇵", "✅", "🔥", "🚑", "💊", "🩺"]
    for _ in range(250):
        parts = [rng.choice(emoji) for _ in range(rng.randrange(1, 6))]
        sep = rng.choice(["", " ", "  ", "\t"])
        lines.append(rng.choice(["", "Great job ", "ok", "Patient happy "]) + sep.join(parts) + rng.choice(["", "!", " thanks", "\n"]))

    for _ in range(300):
        pieces = []
        for _ in range(rng.randrange(1, 6)):
            pieces.append(rng.choice(["word", "x", "Hello", "don't", "  ", "\t", "\n", " \n ", "\n\n", "   \t  ", "end", ".", "(", ")", "{", "}"]))
            pieces.append(rng.choice([" ", "  ", "    ", "\t", "\t\t", "\n", "\r\n", "", "        "]))
        lines.append("".join(pieces))

    for _ in range(300):
        n = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 40)))
        lines.append(rng.choice([
            n, f"Order {n}", f"{n}.{rng.randrange(0, 99999)}", f"+44 {n[:4]} {n[4:10]}",
            f"{int(n[:12] or '0'):,}", f"v{rng.randrange(0,9)}.{rng.randrange(0,99)}.{rng.randrange(0,999)}",
            f"{n} items cost £{rng.randrange(1,9999)}.{rng.randrange(10,99)}", f"ID-{n}-X",
        ]))

    misc = [
        "I'LL be there, we'VE seen it, they'D know, you're right, it's John's.",
        "Naïve café résumé — coöperate façade jalapeño Ångström.",
        "Привет, как дела? Всё хорошо.", "مرحبا بالعالم", "שלום עולם", "Γειά σου Κόσμε",
        "https://intranet.example.org/policies?id=42&lang=en#section-3",
        "user@example.com <admin@hospital.nhs.uk>", "C:\\Windows\\System32\\drivers\\etc\\hosts",
        "SELECT * FROM users WHERE id = 42; -- comment", "a+b=c; x^2 ~ y|z <= 10 >= 3 $5 @home #tag 100%",
        "«quoted» „German“ ‚single‘ “curly” ‘apostrophe’", "…ellipsis… —dash— –en–", "ﬁ ligature ½ ² ™ © ®",
        "<|im_start|>user\nhello<|im_end|>", "<b>bold</b> &amp; &lt;tag&gt;",
    ]
    for _ in range(300):
        s = rng.choice(misc)
        if rng.random() < 0.5:
            s = s.upper() if rng.random() < 0.5 else s.lower()
        lines.append(s)

    rng.shuffle(lines)
    lines = [l for l in lines if l]
    return lines


if args.lines_from:
    with open(args.lines_from, encoding="utf-8") as f:
        lines = [json.loads(row)["text"] for row in f if row.strip()]
else:
    lines = make_lines()

out = []
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "line.txt")
    for i, text in enumerate(lines):
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        r = subprocess.run(
            [args.llama_tokenize, "-m", args.model, "-f", path, "--ids", "--no-bos",
             "--no-parse-special", "--no-escape", "--log-disable"],
            capture_output=True, text=True, check=True)
        ids = json.loads(r.stdout.strip().splitlines()[-1])
        out.append({"text": text, "ids": ids})
        if i % 500 == 0:
            print(f"{i}/{len(lines)}", flush=True)

with open(args.out, "w", encoding="utf-8") as f:
    for row in out:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
print(f"wrote {len(out)} lines to {args.out}")
