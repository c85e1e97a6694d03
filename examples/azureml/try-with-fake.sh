#!/usr/bin/env bash
# Run retrain.azureml.yaml.example against a local fake of an Azure ML v2 workspace
# (online endpoints, deployments, model versions, command jobs that really train, scoring
# URIs) over HTTPS on loopback, with the Azurite blob emulator as its datastore.
# Shows validate → plan → apply → plan (no changes), with the requests the fake received
# in each step: the last plan reads and writes nothing else. Run from the project root
# after `make install-test` (or `make azureml-demo`).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
RETRAIN=.venv/bin/retrain
work=$(mktemp -d)
trap 'kill "$fake" 2>/dev/null || true; wait "$fake" 2>/dev/null || true; rm -rf "$work"' EXIT

$PY -m tests.fakes --seed examples/azureml/seed.json --lro-polls 1 \
    --ready-file "$work/ready.json" >"$work/fake.log" 2>&1 &
fake=$!
for _ in $(seq 1 150); do [ -s "$work/ready.json" ] && break; sleep 0.2; done
[ -s "$work/ready.json" ] || { cat "$work/fake.log"; echo "the fake did not start" >&2; exit 1; }

# What a user of a private endpoint or sovereign cloud sets; here, the fake's addresses.
eval "$($PY - "$work/ready.json" <<'PYEOF'
import json, shlex, sys
info = json.load(open(sys.argv[1]))
env = {
    "RETRAIN_AZUREML_RESOURCE_MANAGER": info["armBaseUrl"],
    "RETRAIN_AZUREML_CA_BUNDLE": info["caBundle"],
    "RETRAIN_STORAGE": info["blobConnectionString"],
    "RETRAIN_ARM_TOKEN": "demo-arm-token",
}
for k, v in env.items():
    print(f"export {k}={shlex.quote(v)}")
print(f"export FAKE_STATS={shlex.quote(info['armBaseUrl'] + '/_fake/stats')}")
PYEOF
)"

# The fake's request counts since the last call: reads, writes, scoring, jobs.
stats() {
  $PY - "$work/last.json" <<'PYEOF'
import json, os, sys, pathlib, requests
s = requests.get(os.environ["FAKE_STATS"], verify=os.environ["RETRAIN_AZUREML_CA_BUNDLE"], timeout=10).json()
last = pathlib.Path(sys.argv[1])
before = json.loads(last.read_text()) if last.exists() else {"requests": {}, "azuremlJobs": 0}
last.write_text(json.dumps(s))
now = {k: v - before["requests"].get(k, 0) for k, v in s["requests"].items() if k.startswith("azureml")}
reads = now.get("azureml GET", 0)
writes = sum(v for k, v in now.items() if not k.endswith("GET"))
print(f"   requests: {reads} reads, {writes} writes/actions"
      f" ({', '.join(f'{k[8:]} {v}' for k, v in now.items() if v) or 'none'})"
      f" | command jobs: {s['azuremlJobs'] - before['azuremlJobs']} new, {s['azuremlJobs']} in all")
PYEOF
}

M=retrain.azureml.yaml.example
echo "== retrain validate";                 $RETRAIN validate -f $M; stats
echo "== retrain plan";                     $RETRAIN plan -f $M; stats
echo "== retrain apply --auto-approve";     $RETRAIN apply -f $M --auto-approve; stats
echo "== retrain plan --detailed-exitcode"; $RETRAIN plan -f $M --detailed-exitcode; stats
echo "== retrain status";                   $RETRAIN status -f $M
