#!/bin/bash
# one run, back to back, on a quiet machine
cd "$(dirname "$0")/../../.."  # the repository root
OUT=benchmarks/reports/kv-scale/floor-2026-11-27.jsonl
rm -f $OUT
date
.venv/bin/python -m benchmarks.kvfloor --stores etcd,redis --sizes 1000,5000,10000 \
  --systems floor-proxy,floor-min,ours-fresh,floor-min-bulk --out $OUT
date
# etcd with its transaction limits raised (server and proxy together): one transaction per batch
.venv/bin/python -m benchmarks.kvfloor --stores etcd --sizes 10000 --systems ours-fresh,floor-min-bulk \
  --etcd-max-txn-ops 100000 --trait etcd_max_txn_ops=100000 --trait etcd_max_txn_bytes=60000000 --out $OUT
date
# 10,000 concurrent adds on the file provider and configurable-http-proxy
.venv/bin/python -m benchmarks.bench --sizes 10000 --backends file --others chp --samples 5 \
  --out benchmarks/reports/kv-scale/bulk-file-chp-2026-11-27
date
echo ALLDONE
