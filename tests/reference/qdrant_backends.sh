#!/usr/bin/env bash
# Both vector backends at scale, in one run, against a running Qdrant server:
#   1. hybrid search latency (enclave bench search) at CHUNKS chunks, embedded;
#   2. migration embedded -> Qdrant, SIGKILLed a quarter of the way and rerun;
#   3. the same latency benchmark on Qdrant;
#   4. migration back, also SIGKILLed midway and rerun;
# and the top 10 of a fixed query set compared after each migration.
#
#   tests/reference/qdrant_backends.sh QDRANT_GRPC_URL [CHUNKS] [SCRATCH]
#
# Build first (cargo build --release) and fetch the models. The synthetic index
# is built once in SCRATCH (default target/bench-qdrant) and reused.
set -euo pipefail
url=${1:?usage: $0 QDRANT_GRPC_URL [CHUNKS] [SCRATCH]}
chunks=${2:-100000}
scratch=${3:-target/bench-qdrant}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=$repo/target/release/enclave
queries=$repo/../shared/eval/msmarco/queries.jsonl
data=$scratch/data
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
collection=enclave_bench_$$
export ENCLAVE_MODELS_DIR=${ENCLAVE_MODELS_DIR:-$repo/models}
export ENCLAVE_LOG=${ENCLAVE_LOG:-warn}

config() { # backend -> a config file
  printf '[vector]\nbackend = "%s"\nurl = "%s"\ncollection = "%s"\n' "$1" "$url" "$collection" >"$work/$1.toml"
  echo "$work/$1.toml"
}
embedded=$(config embedded)
qdrant=$(config qdrant)

# Top 10 chunk ids of the first 20 queries, one line per query.
top10() {
  head -n 20 "$queries" | python3 -c 'import json,sys; [print(json.loads(l)["text"]) for l in sys.stdin]' |
    while IFS= read -r q; do
      "$bin" --config "$1" --data-dir "$data" search "$q" --mode hybrid -n 10 --json |
        python3 -c 'import json,sys; print(" ".join(str(h["chunk_id"]) for h in json.load(sys.stdin)))'
    done
}

# Migrate with a SIGKILL once a quarter is copied, then rerun to the end.
migrate_killed() { # config to-backend
  rm -f "$data/vectors-migrate.json"
  "$bin" --config "$1" --data-dir "$data" vectors migrate --to "$2" --batch 512 --no-switch \
    >"$work/migrate.log" 2>&1 &
  local pid=$! copied=0
  while kill -0 $pid 2>/dev/null; do
    copied=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["copied"])' \
      "$data/vectors-migrate.json" 2>/dev/null || echo 0)
    if [ "$copied" -ge $((chunks / 4)) ]; then kill -KILL $pid; break; fi
    sleep 0.05
  done
  wait $pid 2>/dev/null || true
  echo "killed after $copied points copied"
  [ -f "$data/vectors-migrate.json" ] || { echo "no progress file: the copy was not interrupted"; exit 1; }
  local t0; t0=$(date +%s.%N)
  "$bin" --config "$1" --data-dir "$data" vectors migrate --to "$2" --batch 512 --no-switch
  echo "rerun finished in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
}

echo "== 1. embedded: hybrid search at $chunks chunks"
"$bin" --config "$embedded" bench search --chunks "$chunks" --scratch "$data" --runs 300
top10 "$embedded" >"$work/before.txt"

echo "== 2. migrate embedded -> qdrant (killed midway, rerun)"
migrate_killed "$embedded" qdrant
top10 "$qdrant" >"$work/on-qdrant.txt"
cmp "$work/before.txt" "$work/on-qdrant.txt" && echo "top 10 of 20 queries identical on Qdrant"

echo "== 3. qdrant: hybrid search at $chunks chunks"
"$bin" --config "$qdrant" bench search --chunks "$chunks" --scratch "$data" --runs 300

echo "== 4. migrate qdrant -> embedded (killed midway, rerun)"
migrate_killed "$qdrant" embedded
top10 "$embedded" >"$work/after.txt"
cmp "$work/before.txt" "$work/after.txt" && echo "top 10 of 20 queries identical after the round trip"
