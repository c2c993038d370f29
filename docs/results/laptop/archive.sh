#!/usr/bin/env bash
# Copy runs' small files (config, status, spec, provenance, tracker rows as rows.jsonl.gz) into an archive
# folder that `conceptspace aggregate` and `conceptspace report`'s analysis read like the runs themselves;
# no weights, no sample grids.   bash docs/results/laptop/archive.sh OUT RUN_DIR...
set -euo pipefail
out=$1; shift
for run in "$@"; do
  dest="$out/$(basename "$run")"
  mkdir -p "$dest/tracker"
  for f in config.yaml status.json concept_spec.json provenance.json metrics.jsonl; do
    [ -f "$run/$f" ] && cp "$run/$f" "$dest/$f"
  done
  gzip -9 -c "$run/tracker/rows.jsonl" > "$dest/tracker/rows.jsonl.gz"
done
