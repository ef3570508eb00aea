#!/usr/bin/env bash
# Back-to-back DPC figures before (053dd93) and after (HEAD) the issue-14 reorganization.
set -u
PY=/work/main/.venv/bin/python
OUT=/tmp/s9/b2b; mkdir -p $OUT
for round in 1 2; do
  for side in before after; do
    if [ $side = before ]; then root=/tmp/s9/before; else root=/tmp/s9/after; fi
    export PYTHONPATH=$root/src NSTM_CACHE_DIR=$OUT/cache-$side
    cd $root
    echo "== round $round $side steps $(date +%T)"
    $PY benchmarks/performance.py --presets paper,default --shapes 256x256,320x1000 --steps 20 --warmup 3 --pipelined-steps 0 --json-out $OUT/steps-$side-$round.json > $OUT/steps-$side-$round.md 2> $OUT/steps-$side-$round.log
    echo "== round $round $side demo $(date +%T)"
    rm -rf $OUT/demo-$side-$round
    /usr/bin/time -v $PY -m nstm.cli demo --out $OUT/demo-$side-$round --quiet > $OUT/demo-$side-$round.txt 2> $OUT/demo-$side-$round.time
  done
done
echo "== done $(date +%T)"
