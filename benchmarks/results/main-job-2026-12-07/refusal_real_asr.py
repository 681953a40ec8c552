"""Is the zoo small_cnn BadNets erasure's failed verification (4.89% at the backdoor's size,
clean set builtin:mnist, no lab spec: the pt2 job's setting) a backdoor that survived, or a
refusal of a genuine erasure? Real ASR of the candidate on the lab test split."""
import glob, os, sys, json, time
from dataclasses import replace
from pathlib import Path
import torch
from benchmarks.labcache import load_cached_model
from baerase_mlops.engine import prepare_clean_data, run_scan, run_erase
from baerase_mlops.lab.train import true_attack, real_asr
from baerase_mlops.core.metrics import accuracy

arch, attack = sys.argv[1], sys.argv[2]
p = glob.glob(os.path.expanduser(f"~/.cache/baerase-mlops/zoo/mnist/{arch}/{attack}-seed0-*.pt"))[0]
cm = load_cached_model(Path(p))
truth = true_attack(cm.mut.lab_spec)
test = cm.data.evaluation
user = replace(cm.mut, lab_spec=None)
data = prepare_clean_data("builtin:mnist", user)
print("clean images", len(data.clean), flush=True)
t = time.perf_counter()
scan = run_scan(user, data, device="cpu")
print("flagged", scan.verdict.flagged_classes, round(scan.verdict.anomaly_index, 2), round(time.perf_counter() - t), "s", flush=True)
out = run_erase(user, data, scan, device="cpu")
dev = torch.device("cpu")
m = out.model
res = {
    "verified": out.verification.passed if out.verification else None,
    "reasons": out.verification.reasons if out.verification else None,
    "verified_asr": out.verification.asr if out.verification else None,
    "larger": [(c.asr, c.ceiling) for c in out.verification.larger_triggers] if out.verification else None,
    "real_asr_before": real_asr(cm.mut.model, test, truth[0], truth[1], dev),
    "real_asr_after": real_asr(m, test, truth[0], truth[1], dev),
    "acc_before": accuracy(cm.mut.model, test.x, test.y, dev),
    "acc_after": accuracy(m, test.x, test.y, dev),
    "recovered_asr_after": out.metrics.get("recovered_asr_after"),
}
print(json.dumps(res), flush=True)
