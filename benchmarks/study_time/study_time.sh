#!/bin/bash
# Issue 39 A/B, second session: a study through launch.sweep with the code before (f63d0be) and after (HEAD), in turn.
# after: an empty compilation cache per study (worst case); after_warm: the cache the previous 'after' left.
set -u
OUT=/tmp/ab2; mkdir -p $OUT
run() {  # pair side study config cachedir
  local pair=$1 side=$2 name=$3 cfg=$4 cache=$5 dir
  if [ $side = before ]; then dir=/tmp/before; else dir=/work/main; fi
  rm -rf $OUT/$name-$side$pair
  export CNNJAX_COMPILE_CACHE=$cache
  l0=$(cut -d' ' -f1-3 /proc/loadavg); t0=$(date +%s.%N)
  (cd $dir && PYTHONPATH=$dir python -m launch.sweep --config=$cfg --out=$OUT/$name-$side$pair) > $OUT/$name-$side$pair.log 2>&1
  rc=$?; t1=$(date +%s.%N)
  echo "$name pair=$pair $side rc=$rc wall=$(echo "$t1 - $t0" | bc) load_start=[$l0] load_end=[$(cut -d' ' -f1-3 /proc/loadavg)] $(date +%H:%M:%S)" | tee -a $OUT/summary.txt
}
for pair in 1 2; do
  rm -rf $OUT/cache
  if [ $pair = 1 ]; then
    run $pair after claim experiments/configs/claim_max_vs_avg_pool.py $OUT/cache
    run $pair before claim experiments/configs/claim_max_vs_avg_pool.py $OUT/nocache
    run $pair after_warm claim experiments/configs/claim_max_vs_avg_pool.py $OUT/cache
  else
    run $pair before claim experiments/configs/claim_max_vs_avg_pool.py $OUT/nocache
    run $pair after claim experiments/configs/claim_max_vs_avg_pool.py $OUT/cache
    run $pair after_warm claim experiments/configs/claim_max_vs_avg_pool.py $OUT/cache
  fi
done
rm -rf $OUT/tcache
run 1 after transfer /tmp/slice/transfer_slice.py $OUT/tcache
run 1 before transfer /tmp/slice/transfer_slice.py $OUT/nocache
