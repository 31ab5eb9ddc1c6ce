"""Embedding throughput of sentence-transformers (PyTorch, CPU) on the same texts
and thread count as `enclave bench embed FILE --limit N`, for a side-by-side
comparison. Tokens are counted without padding, as Enclave counts them.

    python tests/reference/st_embed_bench.py ../shared/eval/msmarco/corpus.jsonl 2000 2 [BATCH]
"""
import json
import pathlib
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

path, limit, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
batch = int(sys.argv[4]) if len(sys.argv) > 4 else 32
torch.set_num_threads(threads)
texts = []
with open(path) as f:
    for line in f:
        if line.strip():
            texts.append(json.loads(line).get("text", ""))
        if len(texts) >= limit:
            break
root = pathlib.Path(__file__).resolve().parents[2]
model = SentenceTransformer(str(root / "models" / "all-MiniLM-L6-v2"), device="cpu")
model.max_seq_length = 256
tokens = sum(len(ids) for ids in model.tokenizer(texts, truncation=True, max_length=256)["input_ids"])
model.encode(texts[:batch], batch_size=batch)
start = time.perf_counter()
model.encode(texts, batch_size=batch, normalize_embeddings=True)
secs = time.perf_counter() - start
print(f"sentence-transformers: {len(texts)} texts, {tokens} tokens in {secs:.2f} s: "
      f"{tokens / secs:.0f} tokens/s, {len(texts) / secs:.1f} texts/s (threads {threads}, batch {batch})")
