"""Drive Enclave's OpenAI-compatible API with the official `openai` package,
and scrape /metrics with `prometheus_client`'s OpenMetrics parser.

Run by tests/it/openai_api.rs against a live server; every input comes from
the environment (see `env` below). Exits non-zero on the first failed check.
"""

import json
import os
import sys
import urllib.error
import urllib.request

import openai
from prometheus_client.openmetrics.parser import text_string_to_metric_families


def env(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"missing environment variable {name}")
    return value


BASE = env("ENCLAVE_BASE") + "/v1"
EMBED_MODEL = env("ENCLAVE_EMBED_MODEL")


def client(token):
    # The test server's certificate is self-signed, on loopback.
    return openai.OpenAI(
        base_url=BASE,
        api_key=token,
        max_retries=0,
        http_client=openai.DefaultHttpxClient(verify=False),
    )


def check(condition, what):
    if not condition:
        sys.exit(f"FAILED: {what}")
    print(f"ok: {what}")


full = client(env("TOKEN_FULL"))
demo_only = client(env("TOKEN_DEMO_ONLY"))
embed_only = client(env("TOKEN_EMBED_ONLY"))
revoked = client(env("TOKEN_REVOKED"))

# --- models -------------------------------------------------------------
ids = [m.id for m in full.models.list()]
check(ids == ["enclave", EMBED_MODEL], f"the model list names the grounded and embedding models: {ids}")
ids = [m.id for m in embed_only.models.list()]
check(ids == [EMBED_MODEL], f"an embeddings-only token sees only the embedding model: {ids}")

# --- a grounded answer, whole -------------------------------------------
question = "How many days of annual leave?"
answer = full.chat.completions.create(
    model="enclave", messages=[{"role": "user", "content": question}]
)
ext = answer.model_extra["enclave"]
content = answer.choices[0].message.content
check(answer.object == "chat.completion" and answer.choices[0].finish_reason == "stop", "a chat.completion that stopped")
check(bool(content) and content == ext["text"], f"the content is the stored answer: {content!r}")
check(ext["grounded"] and ext["status"] == "answered", f"grounded and answered ({ext['status']}, {ext['verification']})")
cited = ext["citations"] or ext["quotes"]
check(len(cited) > 0, f"the extension field carries citations ({len(ext['citations'])}) or quotes ({len(ext['quotes'])})")
check(all(c["document_title"] for c in cited) and all(s["document_title"] for s in ext["sources"]), "every citation and source names its document")
check("25" in content or any("25 days" in q["quote"] for q in ext["quotes"]),
      "the answer or its quotes hold the handbook's figure (25 days)")
check(ext["verification"] in ("verified", "partial", "quoted") and ext["tier"], f"verification {ext['verification']} by tier {ext['tier']}")
check(answer.usage.prompt_tokens >= 0 and answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens, "usage counts add up")

# --- the same, streamed -------------------------------------------------
stream = full.chat.completions.create(
    model="enclave",
    messages=[{"role": "user", "content": question}],
    stream=True,
    stream_options={"include_usage": True},
)
pieces, final_ext, finish, usage = [], None, None, None
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            pieces.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
            final_ext = chunk.model_extra.get("enclave")
streamed = "".join(pieces)
check(finish == "stop" and final_ext is not None, "the stream ends with finish_reason stop and the extension field")
check(streamed == final_ext["text"] and streamed, f"the streamed deltas add up to the answer: {streamed!r}")
check(len(final_ext["citations"] or final_ext["quotes"]) > 0, "the streamed answer carries its citations")
check(usage is not None and usage.total_tokens > 0, "the usage chunk arrives when asked for")

# --- collections: a token scoped to one collection ----------------------
vault = "What is the vault access code for the pharmacy safe?"


def sources_of(ext):
    titles = [s["document_title"] for s in ext["sources"]]
    titles += [c["document_title"] for c in ext["citations"] + ext["quotes"]]
    return titles


wide = full.chat.completions.create(model="enclave", messages=[{"role": "user", "content": vault}])
wide_ext = wide.model_extra["enclave"]
check(any("vault" in t.lower() for t in sources_of(wide_ext)) or "7319" in wide.choices[0].message.content,
      f"a token over both collections finds the vault passage (sources {sources_of(wide_ext)})")
narrow = demo_only.chat.completions.create(model="enclave", messages=[{"role": "user", "content": vault}])
narrow_ext = narrow.model_extra["enclave"]
everything = narrow.model_dump_json()
check("7319" not in everything and not any("vault" in t.lower() for t in sources_of(narrow_ext)),
      f"a token scoped to demo never receives the secret collection's passage (status {narrow_ext['status']}, sources {sources_of(narrow_ext)})")

# --- embeddings ---------------------------------------------------------
emb = full.embeddings.create(model=EMBED_MODEL, input=["annual leave", "sick leave"])  # base64 by default
vectors = [d.embedding for d in emb.data]
check(len(vectors) == 2 and all(len(v) == 384 for v in vectors), "two 384-dimensional vectors (base64 transport)")
norm = sum(x * x for x in vectors[0]) ** 0.5
check(abs(norm - 1.0) < 1e-3, f"vectors are unit length ({norm:.4f})")
floats = full.embeddings.create(model=EMBED_MODEL, input="annual leave", encoding_format="float")
check(max(abs(a - b) for a, b in zip(floats.data[0].embedding, vectors[0])) < 1e-6, "float and base64 transports agree")
check(emb.usage.prompt_tokens > 0, f"embedding usage counts tokens ({emb.usage.prompt_tokens})")
try:
    full.embeddings.create(model=EMBED_MODEL, input=["x"] * 1000)
    check(False, "too many inputs are refused")
except openai.BadRequestError as e:
    check("at most" in str(e), "too many inputs are refused with 400")

# --- refusals -----------------------------------------------------------
try:
    revoked.chat.completions.create(model="enclave", messages=[{"role": "user", "content": question}])
    check(False, "a revoked token is refused")
except openai.AuthenticationError as e:
    check("revoked" in str(e), "a revoked token is refused with 401")
try:
    embed_only.chat.completions.create(model="enclave", messages=[{"role": "user", "content": question}])
    check(False, "a token without the ask scope cannot ask")
except openai.PermissionDeniedError:
    check(True, "a token without the ask scope cannot ask (403)")
try:
    full.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": question}])
    check(False, "an unknown model is refused")
except openai.NotFoundError:
    check(True, "an unknown model is refused (404)")

# --- /metrics -----------------------------------------------------------
metrics_url = env("METRICS_URL")
try:
    urllib.request.urlopen(metrics_url, timeout=30)
    check(False, "/metrics without its token is refused")
except urllib.error.HTTPError as e:
    check(e.code == 401, "/metrics without its token is refused (401)")
with open(env("METRICS_TOKEN_FILE")) as f:
    scrape_token = f.read().strip()
request = urllib.request.Request(metrics_url, headers={"Authorization": f"Bearer {scrape_token}"})
with urllib.request.urlopen(request, timeout=30) as r:
    text = r.read().decode()
families = {f.name: f for f in text_string_to_metric_families(text)}
check(len(families) > 15, f"the exposition parses as OpenMetrics ({len(families)} families)")


def samples(family, suffix="", **labels):
    return [s for s in families[family].samples
            if s.name == family + suffix and all(s.labels.get(k) == v for k, v in labels.items())]


def total(family, suffix="", **labels):
    return sum(s.value for s in samples(family, suffix, **labels))


chat_route = "/v1/chat/completions"
check(total("enclave_http_requests", "_total", route=chat_route, status="200") >= 4, "chat completions counted by route and status")
check(total("enclave_http_requests", "_total", route=chat_route, status="401") >= 1, "the revoked token's 401 counted")
check(total("enclave_http_requests", "_total", route=chat_route, status="403") >= 1, "the scope refusal's 403 counted")
check(total("enclave_answers", "_total", via="api") >= 4, "answers through the API counted")
check(total("enclave_answer_seconds", "_count") >= 4, "whole-answer histogram observed every answer")
inf = total("enclave_answer_seconds", "_bucket", le="+Inf")
check(inf == total("enclave_answer_seconds", "_count"), "histogram +Inf buckets equal the counts")
check(total("enclave_first_token_seconds", "_count") >= 1, "time to first token observed")
check(total("enclave_generated_tokens", "_total") > 0 and total("enclave_prompt_tokens", "_total") > 0, "tokens counted")
check(total("enclave_retrieval_seconds", "_count") >= 4, "retrieval latency observed per question")
check(total("enclave_embedding_inputs", "_total") >= 3, "embedding inputs counted")
check(total("enclave_login_failures", "_total") >= 1, "the failed login counted")
check(total("enclave_audit_rows", "_total") >= 10, "audit rows counted")
check(total("enclave_index_documents") >= 2 and total("enclave_index_chunks") > 0, "index sizes reported")
check(len(samples("enclave_llm_queue_length")) >= 1, "queue length per tier reported")
print("all checks passed")
