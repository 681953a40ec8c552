import json, sys, time, torch, glob
from baerase_mlops.config import UnlearningConfig, VerificationConfig
from baerase_mlops.core.classifier import frozen
from baerase_mlops.core.budgeted import search_budgeted_trigger, trigger_asr
from baerase_mlops.engine import load_local_model, prepare_clean_data, run_scan, run_erase, split_holdout
from baerase_mlops.lab.train import true_attack, real_asr
Z = "/root/.cache/baerase-mlops/zoo/mnist"
arch, attack = sys.argv[1], sys.argv[2]
mut = load_local_model(glob.glob(f"{Z}/{arch}/{attack}-seed0-*.pt")[0]); data = prepare_clean_data(None, mut, seed=0)
scan = run_scan(mut, data, device="cpu")
label = scan.verdict.flagged_classes[0]; norm = scan.verdict.classes[label].norm
stop_set, verify_set = split_holdout(scan, 0.5)
atk, tgt = true_attack(mut.lab_spec)
dev = torch.device("cpu")
print("sizes", len(scan.optimisation), len(stop_set), len(verify_set), "norm", norm, flush=True)
for m in ("baerase", "nc_unlearning"):
    out = run_erase(mut, data, scan, UnlearningConfig(), m, "cpu", verification=None)
    model = out.model
    with frozen(model):
        r = {name: round(real_asr(model, s, atk, tgt, dev), 4) for name, s in (("optimisation", scan.optimisation), ("stop", stop_set), ("verify", verify_set))}
        r["test"] = round(out.metrics["real_asr_after"], 4)
        for src_name, src in (("optimisation", scan.optimisation), ("stop", stop_set)):
            f = search_budgeted_trigger(model, src.x[src.y != label], label, norm, steps=150, restarts=2, lr=0.05, batch_size=64, generator=torch.Generator().manual_seed(1000 + label), device=dev)
            r[f"search_on_{src_name}"] = {"search_asr": round(f.search_asr, 4), "verify_asr": round(trigger_asr(model, verify_set.x[verify_set.y != label], f.mask, f.pattern, label, dev), 4)}
    print(json.dumps({"arch": arch, "attack": attack, "unlearning": m, "real_asr_by_set": r}), flush=True)
