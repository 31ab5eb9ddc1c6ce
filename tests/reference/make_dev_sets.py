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

Usage: python3 tests/reference/make_dev_sets.py [--sizes] [SHARED_EVAL_DIR] [OUT_DIR]
(--sizes also builds smaller corpora of the hotpotqa and keywords kinds, for
calibrating the evidence gate across corpus sizes)
(defaults: ../shared/eval and target/dev-sets). Deterministic: same input, same sets.
"""

import collections
import html.parser
import json
import os
import random
import re
import sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
shared = args[0] if args else "../shared/eval"
out = args[1] if len(args) > 1 else "target/dev-sets"


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


class _Text(html.parser.HTMLParser):
    """The text of an HTML page, a line per block element."""

    BLOCKS = {"p", "li", "h1", "h2", "h3", "h4", "tr", "div", "br", "title"}

    def __init__(self):
        super().__init__()
        self.parts = []
        self.hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.hidden += 1
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.hidden -= 1

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)

    def text(self):
        return re.sub(r"\n\s*\n+", "\n\n", "".join(self.parts)).strip()


def demo():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packaging", "demo")
    corpus = []
    for name in sorted(os.listdir(os.path.join(root, "documents"))):
        with open(os.path.join(root, "documents", name), encoding="utf-8") as f:
            text = f.read()
        if name.endswith(".html"):
            parser = _Text()
            parser.feed(text)
            text = parser.text()
        corpus.append({"_id": name, "title": os.path.splitext(name)[0], "text": text})
    queries, qrels = [], []
    with open(os.path.join(root, "questions.jsonl")) as f:
        for n, line in enumerate(f):
            if not line.strip():
                continue
            q = json.loads(line)
            if not q.get("answerable"):
                continue
            qid = f"demo{n}"
            holders = [d["_id"] for d in corpus
                       if any(a.lower() in d["text"].lower() for a in q["answers"])]
            if not holders:
                continue
            queries.append({"_id": qid, "text": q["question"]})
            qrels.extend((qid, d) for d in holders)
    write_set("demo", corpus, queries, qrels, """
The bundled demo corpus (packaging/demo/documents, HTML reduced to its text)
with the answerable questions of packaging/demo/questions.jsonl; a question's
relevant documents are those holding one of its expected answers. Tiny (three
documents): there for the gate, whose chance evidence depends on corpus size,
not for choosing a fusion. Built by tests/reference/make_dev_sets.py.""")


def sizes():
    """Smaller corpora of the same kinds, for calibrating how the gate's
    chance evidence grows with the number of passages: HotpotQA's first k
    questions with their ten paragraphs each, and k keyword queries with
    their passages among random others from msmarco."""
    with open(os.path.join(shared, "hotpotqa-dev", "dev.jsonl")) as f:
        hq = [json.loads(line) for line in f if line.strip()]
    for k in (3, 10, 30):
        corpus, seen, queries, qrels = [], set(), [], []
        for q in hq[:k]:
            for title, sentences in q["context"]:
                if title not in seen:
                    seen.add(title)
                    corpus.append({"_id": title, "title": title, "text": "".join(sentences)})
            queries.append({"_id": q["_id"], "text": q["question"]})
            qrels.extend((q["_id"], t) for t in {fact[0] for fact in q["supporting_facts"]})
        write_set(f"size-hotpotqa-{len(corpus)}", corpus, queries, qrels,
                  f"HotpotQA's first {k} questions and their paragraphs (see hotpotqa).")
    kw = os.path.join(out, "keywords")
    with open(os.path.join(kw, "queries.jsonl")) as f:
        kq = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(kw, "qrels", "test.tsv")) as f:
        target = dict(line.rstrip("\n").split("\t")[:2] for line in list(f)[1:])
    with open(os.path.join(shared, "msmarco", "corpus.jsonl")) as f:
        docs = [json.loads(line) for line in f if line.strip()]
    by_id = {d["_id"]: d for d in docs}
    rng = random.Random(29)
    for n, k in ((30, 3), (100, 10), (300, 30), (1000, 60)):
        chosen = kq[:k]
        ids = [target[q["_id"]] for q in chosen]
        others = [d["_id"] for d in docs if d["_id"] not in set(ids)]
        ids += rng.sample(others, n - len(ids))
        write_set(f"size-keywords-{n}", [by_id[i] for i in ids], chosen,
                  [(q["_id"], target[q["_id"]]) for q in chosen],
                  f"{k} keyword queries (see keywords) among {n} msmarco passages, seed 29.")


hotpotqa()
keywords()
demo()
if "--sizes" in sys.argv:
    sizes()
