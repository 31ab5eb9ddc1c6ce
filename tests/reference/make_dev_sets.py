#!/usr/bin/env python3
"""Build the retrieval dev sets on which BM25 is as strong as MiniLM or stronger,
in BEIR layout (corpus.jsonl, queries.jsonl, qrels/test.tsv), from data that is
already here:

  hotpotqa   shared/eval/hotpotqa-dev/dev.jsonl: every distinct paragraph of the
             100 questions is a document (id = its title), each question a query,
             its supporting paragraphs the relevant documents. Multi-hop questions
             full of names: lexical matching carries them.
  keywords   known-item keyword queries over shared/eval/msmarco/corpus.jsonl: for
             a seeded sample of 100 passages, the query is the passage's three
             rarest words that occur in at least two passages (not a typo, not a
             unique id), in passage order; the relevant document is the passage.
             Keyword searches like staff type them; dense retrieval is weak here
             by construction.

Usage: python3 tests/reference/make_dev_sets.py [SHARED_EVAL_DIR] [OUT_DIR]
(defaults: ../shared/eval and target/dev-sets). Deterministic: same input, same sets.
"""

import collections
import json
import os
import random
import re
import sys

shared = sys.argv[1] if len(sys.argv) > 1 else "../shared/eval"
out = sys.argv[2] if len(sys.argv) > 2 else "target/dev-sets"


def write_set(name, corpus, queries, qrels, note):
    d = os.path.join(out, name)
    os.makedirs(os.path.join(d, "qrels"), exist_ok=True)
    with open(os.path.join(d, "corpus.jsonl"), "w") as f:
        for doc in corpus:
            f.write(json.dumps(doc) + "\n")
    with open(os.path.join(d, "queries.jsonl"), "w") as f:
        for q in queries:
            f.write(json.dumps(q) + "\n")
    with open(os.path.join(d, "qrels", "test.tsv"), "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, doc in qrels:
            f.write(f"{qid}\t{doc}\t1\n")
    with open(os.path.join(d, "SOURCE.txt"), "w") as f:
        f.write(note.strip() + "\n")
    print(f"{d}: {len(corpus)} documents, {len(queries)} queries, {len(qrels)} judgements")


def hotpotqa():
    corpus, seen, queries, qrels = [], set(), [], []
    with open(os.path.join(shared, "hotpotqa-dev", "dev.jsonl")) as f:
        for line in f:
            if not line.strip():
                continue
            q = json.loads(line)
            for title, sentences in q["context"]:
                if title not in seen:
                    seen.add(title)
                    corpus.append({"_id": title, "title": title, "text": "".join(sentences)})
            queries.append({"_id": q["_id"], "text": q["question"]})
            for title in {fact[0] for fact in q["supporting_facts"]}:
                qrels.append((q["_id"], title))
    write_set("hotpotqa", corpus, queries, qrels, """
HotpotQA dev (distractor setting), the 100 questions in shared/eval/hotpotqa-dev:
documents are the distinct context paragraphs, relevance is the supporting
paragraphs. Built by tests/reference/make_dev_sets.py.""")


WORD = re.compile(r"[a-z][a-z]+")


def keywords():
    with open(os.path.join(shared, "msmarco", "corpus.jsonl")) as f:
        docs = [json.loads(line) for line in f if line.strip()]
    words = [WORD.findall(d.get("text", "").lower()) for d in docs]
    df = collections.Counter(w for ws in words for w in set(ws))
    rng = random.Random(13)
    picked = rng.sample(range(len(docs)), 100)
    queries, qrels = [], []
    for n, i in enumerate(picked):
        candidates = [w for w in dict.fromkeys(words[i]) if df[w] >= 2 and len(w) > 3]
        if len(candidates) < 3:
            continue
        rarest = set(sorted(candidates, key=lambda w: (df[w], w))[:3])
        text = " ".join(w for w in dict.fromkeys(words[i]) if w in rarest)
        qid = f"kw{n}"
        queries.append({"_id": qid, "text": text})
        qrels.append((qid, docs[i]["_id"]))
    write_set("keywords", docs, queries, qrels, """
Known-item keyword queries over shared/eval/msmarco/corpus.jsonl: for 100
passages sampled with seed 13, the query is the passage's three rarest words
(occurring in at least two passages, longer than three letters), in passage
order; the passage is the one relevant document. Built by
tests/reference/make_dev_sets.py.""")


hotpotqa()
keywords()
