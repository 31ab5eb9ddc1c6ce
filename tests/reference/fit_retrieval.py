#!/usr/bin/env python3
"""Reproduce the two retrieval constants fitted on the dev sets, from the
evidence `enclave eval gate --dump FILE` writes (one JSON line per corpus and
question: the question's terms and idf, both candidate lists, each candidate's
document and query-term coverage, the gate's hits and evidence).

  fusion  The dense side's weight per query, w = sigmoid(a + b*cos - c*gap),
          cos = MiniLM's best cosine, gap = coverage of BM25's top hit minus
          the mean coverage of its next nine. Grid search for the (a, b, c)
          whose worst nDCG@10 margin over the better single retriever is
          best; then the same search leaving each set out, scored on it.
  gate    For a grid of size-scaled thresholds min(1, t10 + s ln(passages / 10)),
          the worst slack against the targets (false refusals <= 5 % where a
          corpus has ten or more answerable questions, off-topic refusals
          >= 95 %) over every corpus, then the shipped one's rates per corpus.
          Off-topic means other sets' questions, never a set of the same source.

Usage:
  python3 tests/reference/make_dev_sets.py --sizes
  enclave eval gate ../shared/eval/msmarco ../shared/eval/dbpedia \\
      target/dev-sets/{hotpotqa,keywords,demo} target/dev-sets/size-* \\
      --scratch /tmp/folds --dump /tmp/gate-dump.jsonl
  python3 tests/reference/fit_retrieval.py /tmp/gate-dump.jsonl /tmp/folds

Pure Python (no numpy): it runs where the dev sets are built.
"""

import collections
import json
import math
import os
import sqlite3
import sys

FUSION_SETS = {
    "msmarco": "../shared/eval/msmarco",
    "dbpedia": "../shared/eval/dbpedia",
    "hotpotqa": "target/dev-sets/hotpotqa",
    "keywords": "target/dev-sets/keywords",
}
MAIN = set(FUSION_SETS) | {"demo"}
GRID = [i / 20 for i in range(21)]


def source(name):
    """Sets built from one corpus or one kind of data are never off-topic to each other."""
    if name in ("msmarco", "keywords") or name.startswith("size-keywords"):
        return "msmarco"
    if name == "hotpotqa" or name.startswith("size-hotpotqa"):
        return "hotpotqa"
    return name


def qrels(path):
    out = collections.defaultdict(dict)
    with open(os.path.join(path, "qrels", "test.tsv")) as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            try:
                out[cols[0]][cols[1]] = int(cols[-1])
            except ValueError:
                continue
    return out


def ndcg10(docs, judged):
    dcg = sum(max(0, judged.get(d, 0)) / math.log2(i + 2) for i, d in enumerate(docs[:10]))
    ideal = sorted((max(0, g) for g in judged.values()), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def documents(line, chunks):
    seen, out = set(), []
    for c in chunks:
        doc = line["chunks"].get(str(c), [None])[0]
        if doc is not None and doc not in seen:
            seen.add(doc)
            out.append(doc)
    return out


def convex(line, w):
    """Min-max normalised weighted sum, as `rag::fusion::fuse` computes it."""
    def span(side):
        scores = [s for _, s in side]
        return (min(scores), max(scores)) if scores else (0.0, 0.0)

    def norm(s, lo_hi):
        lo, hi = lo_hi
        return min(1.0, max(0.0, (s - lo) / (hi - lo))) if hi > lo else 1.0

    score = collections.defaultdict(float)
    bm25, dense = span(line["bm25"]), span(line["dense"])
    for c, s in line["bm25"]:
        score[c] += (1 - w) * norm(s, bm25)
    for c, s in line["dense"]:
        score[c] += w * norm(s, dense)
    return [c for c, _ in sorted(score.items(), key=lambda x: (-x[1], x[0]))]


def signals(line):
    cos = line["dense"][0][1] if line["dense"] else 0.0
    cov = [line["chunks"].get(str(c), [None, 0.0])[1] for c, _ in line["bm25"][:10]]
    gap = (cov[0] - sum(cov[1:]) / (len(cov) - 1)) if len(cov) > 1 else (cov[0] if cov else 0.0)
    return cos, gap


def fusion(lines):
    per_set = {}
    for name, path in FUSION_SETS.items():
        judged = qrels(path)
        rows = []
        for line in lines:
            if line["own"] and line["corpus"] == name:
                j = judged[line["id"]]
                rows.append((signals(line), [ndcg10(documents(line, convex(line, w)), j) for w in GRID],
                             ndcg10(documents(line, [c for c, _ in line["bm25"]]), j),
                             ndcg10(documents(line, [c for c, _ in line["dense"]]), j)))
        per_set[name] = rows
    single = {s: max(sum(r[2] for r in rows), sum(r[3] for r in rows)) / len(rows)
              for s, rows in per_set.items()}

    def margin(a, b, c, name):
        rows = per_set[name]
        total = 0.0
        for (cos, gap), by_w, _, _ in rows:
            w = 1 / (1 + math.exp(-(a + b * cos - c * gap)))
            total += by_w[round(w * 20)]
        return total / len(rows) - single[name]

    grid = [(a, b, c) for a in range(-14, 3) for b in range(0, 29, 2) for c in range(0, 25, 2)]

    def best(names):
        return max(grid, key=lambda g: min(margin(*g, n) for n in names))

    chosen = best(list(per_set))
    print("fusion: w = sigmoid(a + b*cos - c*gap); the shipped one is a=-11 b=22 c=6")
    for g in (chosen, (-11, 22, 6)):
        print(f"  a={g[0]} b={g[1]} c={g[2]}: " +
              "  ".join(f"{n} {margin(*g, n):+.4f}" for n in per_set))
    print("  refitted without each set, margin on it:")
    for held in per_set:
        g = best([n for n in per_set if n != held])
        print(f"    {held:<10} a={g[0]} b={g[1]} c={g[2]}  {margin(*g, held):+.4f}")


def gate(lines, scratch):
    corpora = {}
    for corpus in sorted({l["corpus"] for l in lines}):
        db = sqlite3.connect(os.path.join(scratch, corpus, "enclave.sqlite"))
        passages = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        own = [l["evidence"] for l in lines if l["corpus"] == corpus and l["own"]]
        off = [l["evidence"] for l in lines if l["corpus"] == corpus and not l["own"]
               and l["asked"] in MAIN and source(l["asked"]) != source(corpus)]
        corpora[corpus] = (passages, own, off)

    def rates(t10, s):
        out = {}
        for corpus, (passages, own, off) in corpora.items():
            t = min(1.0, t10 + s * math.log(max(passages, 1) / 10))
            out[corpus] = (t, sum(e < t for e in own), len(own),
                           sum(e < t for e in off) / max(1, len(off)), len(off))
        return out

    def slack(t10, s):
        return min(min(0.05 - fr / n if n >= 10 else 1.0, ot - 0.95)
                   for _, fr, n, ot, _ in rates(t10, s).values())

    print("gate: worst slack of min(1, t10 + s ln(passages/10)) against the targets")
    for t10 in (0.35, 0.40, 0.45, 0.50, 0.55, 0.60):
        print(f"  t10={t10:.2f} " + " ".join(f"s={s:.2f}:{slack(t10, s):+.3f}"
                                            for s in (0.05, 0.10, 0.15, 0.20, 0.25)))
    print("  the shipped one, t10=0.45 s=0.15: false refusals, off-topic refused")
    for corpus, (t, fr, n, ot, m) in rates(0.45, 0.15).items():
        print(f"    {corpus:<20} {corpora[corpus][0]:5d} passages  t={t:.2f}  "
              f"{fr}/{n}  {100 * ot:.1f} % of {m}")


def main():
    dump, scratch = sys.argv[1], sys.argv[2]
    with open(dump) as f:
        lines = [json.loads(l) for l in f if l.strip()]
    fusion(lines)
    gate(lines, scratch)


if __name__ == "__main__":
    main()
