#!/bin/sh
# pipeline-rate.sh -- the throughput of the whole prumux pipeline
# (prumux-tokenize | prumux-mux | prumux-infer | prumux-demux) for MODEL on
# the texts of TSV, in rows per second: the best of REPEAT runs (timing
# noise only ever slows a run down).  grid.mk measures every (N, s) model
# with it, so every point has the same harness.
#
#   sh pipeline-rate.sh [-j THREADS] [-r REPEAT] [-f FIELD] MODEL TSV
#
# THREADS: prumux-infer threads (default 2); FIELD: the text column of TSV
# (default 2).  Prints one number; exit status 1 when a stage fails.
set -u
threads=2 repeat=3 field=2
while getopts j:r:f: opt; do
  case $opt in
    j) threads=$OPTARG ;;
    r) repeat=$OPTARG ;;
    f) field=$OPTARG ;;
    *) echo "usage: pipeline-rate.sh [-j THREADS] [-r REPEAT] [-f FIELD] MODEL TSV" >&2
       exit 1 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || { echo "usage: pipeline-rate.sh [-j THREADS] [-r REPEAT] [-f FIELD] MODEL TSV" >&2; exit 1; }
model=$1 tsv=$2
rows=$(wc -l < "$tsv") || exit 1
[ "$rows" -gt 0 ] || { echo "pipeline-rate.sh: $tsv: no rows" >&2; exit 1; }
best=
i=0
while [ $i -lt "$repeat" ]; do
  t0=$(date +%s%N)
  # The exit status of every stage, not only the last one's.
  st=$( { { { { prumux-tokenize -m "$model" -f "$field" "$tsv" || echo tok >&3; } \
          | { prumux-mux -m "$model" || echo mux >&3; }; } \
          | { prumux-infer -j "$threads" -m "$model" || echo infer >&3; }; } \
          | { prumux-demux -m "$model" > /dev/null || echo demux >&3; }; } 3>&1 )
  t1=$(date +%s%N)
  [ -z "$st" ] || { echo "pipeline-rate.sh: $model: $st failed" >&2; exit 1; }
  ns=$((t1 - t0))
  if [ -z "$best" ] || [ "$ns" -lt "$best" ]; then best=$ns; fi
  i=$((i + 1))
done
awk -v r="$rows" -v ns="$best" 'BEGIN { printf "%.1f\n", r / (ns / 1e9) }'
