#!/usr/bin/env bash
# Encode a BEIR folder (corpus.jsonl, queries.jsonl) into the vectors folder bench_search.py reads
# (docs.jsonl, queries.jsonl), with `lsr encode`, in resumable chunks: the corpus is cut into chunks of
# CHUNK passages, each chunk is encoded into OUT/parts/NNNN.jsonl (written as .tmp, renamed when
# complete), and a rerun skips the chunks already done, so a killed run loses at most one chunk.
# When every chunk is done the parts are joined into OUT/docs.jsonl and the queries are encoded.
# docs.jsonl gets an empty "content" (the parts keep the texts): both lsr and pyseismic-lsr store a
# document's content in their index, and the benchmark compares search indexes, not text stores
# (KEEP_CONTENT=1 keeps the texts). A rerun after completion only redoes the join and the queries.
#
#   benchmarks/encode_collection.sh /work/data/real300k /work/data/real300k_vec [MODEL] [CHUNK]
#   benchmarks/encode_collection.sh /work/shared/data/scifact /work/data/scifact_vec   # corpus.jsonl.gz too
#
# Environment: LSR (default: .venv/bin/lsr, else lsr), THREADS (default 1), NICE (default 19),
# EXTRA (more `lsr encode` options, e.g. "--precision bfloat16"). Progress bars go to stderr.
set -euo pipefail
SRC=${1:?usage: encode_collection.sh BEIR_DIR OUT_DIR [MODEL] [CHUNK]}
OUT=${2:?usage: encode_collection.sh BEIR_DIR OUT_DIR [MODEL] [CHUNK]}
MODEL=${3:-/work/shared/models/splade-tiny}
CHUNK=${4:-20000}
THREADS=${THREADS:-1}
NICE=${NICE:-19}
EXTRA=${EXTRA:-}
if [[ -z "${LSR:-}" ]]; then
  if [[ -x .venv/bin/lsr ]]; then LSR=.venv/bin/lsr; else LSR=lsr; fi
fi
export NUMBA_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS TOKENIZERS_PARALLELISM=false

if [[ -f "$SRC/corpus.jsonl" ]]; then READ=(cat "$SRC/corpus.jsonl")
elif [[ -f "$SRC/corpus.jsonl.gz" ]]; then READ=(zcat "$SRC/corpus.jsonl.gz")
else echo "encode_collection: error: $SRC has no corpus.jsonl (or corpus.jsonl.gz)" >&2; exit 2; fi
[[ -f "$SRC/queries.jsonl" ]] || { echo "encode_collection: error: $SRC has no queries.jsonl" >&2; exit 2; }
mkdir -p "$OUT/parts" "$OUT/chunks"
total=$("${READ[@]}" | wc -l)
n_chunks=$(( (total + CHUNK - 1) / CHUNK ))
# the chunks are cut once (deterministic: line ranges of corpus.jsonl), and reused by reruns
if [[ ! -f "$OUT/chunks/.done" ]] || [[ "$(cat "$OUT/chunks/.done")" != "$total $CHUNK" ]]; then
  rm -f "$OUT"/chunks/c*
  "${READ[@]}" | split -l "$CHUNK" -d -a 4 - "$OUT/chunks/c"
  echo "$total $CHUNK" > "$OUT/chunks/.done"
fi
start=$(date +%s)
i=0
for chunk in "$OUT"/chunks/c*; do
  i=$((i + 1))
  part="$OUT/parts/$(basename "$chunk" | tr -d c).jsonl"
  if [[ -f "$part" ]]; then echo "chunk $i/$n_chunks: done before, skipped" >&2; continue; fi
  echo "chunk $i/$n_chunks ($(( $(date +%s) - start )) s so far): $chunk -> $part" >&2
  # shellcheck disable=SC2086
  nice -n "$NICE" "$LSR" encode --model "$MODEL" --input "$chunk" --output "$part.tmp" --threads "$THREADS" $EXTRA
  mv "$part.tmp" "$part"
done
PY=$(dirname "$(command -v "$LSR")")/python
[[ -x "$PY" ]] || PY=python3
if [[ "${KEEP_CONTENT:-0}" == 1 ]]; then
  cat "$OUT"/parts/*.jsonl > "$OUT/docs.jsonl.tmp"
else
  "$PY" -c '
import json, sys
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for path in sys.argv[3:]:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    rec["content"] = ""
                    out.write(json.dumps(rec, ensure_ascii=False) + "\n")
' - "$OUT/docs.jsonl.tmp" "$OUT"/parts/*.jsonl
fi
mv "$OUT/docs.jsonl.tmp" "$OUT/docs.jsonl"
# shellcheck disable=SC2086
nice -n "$NICE" "$LSR" encode --model "$MODEL" --input "$SRC/queries.jsonl" --output "$OUT/queries.jsonl" \
  --queries --threads "$THREADS" $EXTRA
echo "encode_collection: $(wc -l < "$OUT/docs.jsonl") documents, $(wc -l < "$OUT/queries.jsonl") queries in $(( $(date +%s) - start )) s -> $OUT" >&2
