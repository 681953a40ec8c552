#!/bin/bash
# usage: benchmarks/results/main-job-2026-12-07/mainjob.sh TAG demo | TAG ARCH ATTACK
# The MLflow main job on models:/clf/1 of a fresh SQLite store in /tmp/mainjob-TAG, timed from
# `mlflow run` to its exit; the clean set is the MLproject's default (builtin:mnist).
set -e
REPO=$(cd "$(dirname "$0")/../../.." && pwd); TAG=$1; shift; D=/tmp/mainjob-$TAG
rm -rf "$D"; mkdir -p "$D"
export PYTHONDONTWRITEBYTECODE= PATH="$REPO/.venv/bin:$PATH" MLFLOW_TRACKING_URI="sqlite:///$D/mlflow.db" PYTHONPATH="$REPO"
(cd "$D" && python "$REPO/benchmarks/results/main-job-2026-12-07/register.py" "$@" > "$D/register.txt" 2>&1)
start=$(date +%s.%N)
mlflow run "$REPO" --env-manager local -P model_uri=models:/clf/1 > "$D/job.txt" 2>&1
end=$(date +%s.%N)
echo "$TAG wall $(echo "$end - $start" | bc) s"
python - "$D" <<'PY'
import glob, json, sys
folder = sys.argv[1]
verdict = json.load(open(glob.glob(f"{folder}/mlruns/*/*/artifacts/report/verdict.json")[0]))
print("job phases", {k: round(v, 1) for k, v in verdict["job_phases"].items()})
print("scan", {k: round(v, 1) for k, v in verdict["timings"].items()})
for path in glob.glob(f"{folder}/mlruns/*/*/artifacts/verification.json"):
    v = json.load(open(path))
    print("verification", {k: round(x, 1) for k, x in v["timings"].items()}, "passed" if v["passed"] else v["reasons"])
PY
