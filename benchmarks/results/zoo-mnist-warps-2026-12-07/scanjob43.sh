#!/bin/bash
set -e
REPO=/work/main; D=/tmp/scanjob43-$1; rm -rf $D; mkdir -p $D
export PYTHONDONTWRITEBYTECODE= PATH="$REPO/.venv/bin:$PATH" MLFLOW_TRACKING_URI="sqlite:///$D/mlflow.db" PYTHONPATH="$REPO"
(cd $D && python /work/probes/register_gtsrb.py > $D/register.txt 2>&1)
start=$(date +%s.%N)
(cd $D && mlflow run "$REPO" -e scan --env-manager local -P model_uri=models:/gtsrb/1 -P data_uri=/work/shared/datasets/gtsrb.npz#test > $D/job.txt 2>&1) || true
end=$(date +%s.%N)
echo "$1 wall $(echo "$end - $start" | bc) s"
grep -E "backdoor|no backdoor|recovering|margins|warps" $D/job.txt | tail -5
python - $D <<'PY'
import glob, json, sys
v = json.load(open(glob.glob(f"{sys.argv[1]}/mlruns/*/*/artifacts/report/verdict.json")[0]))
print("job phases", {k: round(x, 1) for k, x in v["job_phases"].items()})
print("scan", {k: round(x, 1) for k, x in v["timings"].items()})
PY
