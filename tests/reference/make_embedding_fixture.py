"""Compute reference embeddings with sentence-transformers, once.

Writes tests/fixtures/minilm_reference.json, which tests/it/embeddings.rs compares
against Enclave's candle embedder (cosine >= 0.999). Run from the repository
root after models/fetch.sh, in a virtualenv with sentence-transformers:

    python tests/reference/make_embedding_fixture.py
"""
import json
import pathlib

from sentence_transformers import SentenceTransformer

TEXTS = [
    "Annual leave entitlement is 25 working days per year.",
    "How many days of holiday do employees get?",
    "The patient presented with acute chest pain radiating to the left arm.",
    "Données personnelles : le droit à l'effacement s'applique sans délai.",
    "短い日本語の文です。",
    "   leading and trailing whitespace   ",
    "a",
    # Longer than 256 word pieces: checks truncation matches.
    " ".join(["The quarterly report shows revenue growth in every region."] * 40),
]

root = pathlib.Path(__file__).resolve().parents[2]
model = SentenceTransformer(str(root / "models" / "all-MiniLM-L6-v2"), device="cpu")
model.max_seq_length = 256
vectors = model.encode(TEXTS, normalize_embeddings=True)
out = {
    "model": "all-MiniLM-L6-v2",
    "max_seq_length": 256,
    "pooling": "mean",
    "normalized": True,
    "items": [
        {"text": t, "vector": [round(float(x), 6) for x in v]} for t, v in zip(TEXTS, vectors)
    ],
}
path = root / "tests" / "fixtures" / "minilm_reference.json"
path.write_text(json.dumps(out, ensure_ascii=False) + "\n")
print(f"wrote {path} ({len(TEXTS)} vectors)")
