#!/bin/bash
# Issue 39, third A/B (2026-12-08): the claim study through launch.sweep, before (f63d0be, in its
# own worktree at $BEFORE) and after ($AFTER, this checkout), in turn, PAIRS times.
# after: an empty compilation cache; after_warm: the cache that run left. Usage:
#   BEFORE=/tmp/before AFTER=$PWD OUT=/tmp/claim_ab PAIRS=3 bash benchmarks/study_time/claim_time.sh
set -u
BEFORE=${BEFORE:-/tmp/before} AFTER=${AFTER:-$PWD} OUT=${OUT:-/tmp/claim_ab} PAIRS=${PAIRS:-3}
CFG=experiments/configs/claim_max_vs_avg_pool.py
mkdir -p $OUT
run() {  # pair side cachedir
  local pair=$1 side=$2 dir=$AFTER
  [ $side = before ] && dir=$BEFORE
  rm -rf $OUT/claim-$side$pair
  export CNNJAX_COMPILE_CACHE=$3
  local l0 t0 t1 rc
  l0=$(cut -d' ' -f1-3 /proc/loadavg); t0=$(date +%s.%N)
  (cd $dir && PYTHONPATH=$dir python -m launch.sweep --config=$CFG --out=$OUT/claim-$side$pair) > $OUT/claim-$side$pair.log 2>&1
  rc=$?; t1=$(date +%s.%N)
  echo "claim pair=$pair $side rc=$rc wall=$(echo "$t1 - $t0" | bc) load_start=[$l0] load_end=[$(cut -d' ' -f1-3 /proc/loadavg)] $(date +%H:%M:%S)" | tee -a $OUT/summary.txt
}
for pair in $(seq 1 $PAIRS); do
  rm -rf $OUT/cache
  if [ $((pair % 2)) = 1 ]; then
    run $pair after $OUT/cache; run $pair before $OUT/nocache; run $pair after_warm $OUT/cache
  else
    run $pair before $OUT/nocache; run $pair after $OUT/cache; run $pair after_warm $OUT/cache
  fi
done
