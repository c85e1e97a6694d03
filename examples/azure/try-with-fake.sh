#!/usr/bin/env bash
# Run retrain.azure.yaml.example against a local fake of Azure: the Resource Manager,
# BES and classic management APIs over HTTPS on loopback, and the Azurite blob emulator.
# Shows validate → plan → apply → plan (no changes), with the fake's request counts
# after each step. Run from the project root after `make install` (or `make azure-demo`).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
RETRAIN=.venv/bin/retrain
work=$(mktemp -d)
trap 'kill "$fake" 2>/dev/null || true; wait "$fake" 2>/dev/null || true; rm -rf "$work"' EXIT

$PY -m tests.fakes --seed examples/azure/seed.json --ready-file "$work/ready.json" \
    >"$work/fake.log" 2>&1 &
fake=$!
for _ in $(seq 1 150); do [ -s "$work/ready.json" ] && break; sleep 0.2; done
[ -s "$work/ready.json" ] || { cat "$work/fake.log"; echo "the fake did not start" >&2; exit 1; }

# What a user of a private endpoint or sovereign cloud sets; here, the fake's addresses.
eval "$($PY - "$work/ready.json" <<'PYEOF'
import json, shlex, sys
info = json.load(open(sys.argv[1]))
env = {
    "RETRAIN_AZURE_RESOURCE_MANAGER": info["armBaseUrl"],
    "RETRAIN_AZURE_CLASSIC_MANAGEMENT": info["classicBaseUrl"],
    "RETRAIN_AZURE_BES_HOST": info["besBaseUrl"],
    "RETRAIN_AZURE_CA_BUNDLE": info["caBundle"],
    "RETRAIN_STORAGE": info["blobConnectionString"],
    "RETRAIN_ARM_TOKEN": "demo-arm-token",
    "RETRAIN_BES_KEY": info["seeded"]["bes"][0]["apiKey"],
    "RETRAIN_CLASSIC_TOKEN": info["seeded"]["classic"][0]["token"],
}
for k, v in env.items():
    print(f"export {k}={shlex.quote(v)}")
print(f"export FAKE_STATS={shlex.quote(info['armBaseUrl'] + '/_fake/stats')}")
PYEOF
)"

stats() {
  $PY - <<'PYEOF'
import json, os, requests
s = requests.get(os.environ["FAKE_STATS"], verify=os.environ["RETRAIN_AZURE_CA_BUNDLE"], timeout=10).json()
print("   fake saw so far:", ", ".join(f"{k} {v}" for k, v in s["requests"].items()) or "nothing",
      f"| BES jobs: {s['besJobs']}")
PYEOF
}

M=retrain.azure.yaml.example
echo "== retrain validate";                 $RETRAIN validate -f $M; stats
echo "== retrain plan";                     $RETRAIN plan -f $M; stats
echo "== retrain apply --auto-approve";     $RETRAIN apply -f $M --auto-approve; stats
echo "== retrain plan --detailed-exitcode"; $RETRAIN plan -f $M --detailed-exitcode; stats
echo "== retrain status";                   $RETRAIN status -f $M
