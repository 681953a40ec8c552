import json, sys, time, torch, glob
from baerase_mlops.config import UnlearningConfig, VerificationConfig
from baerase_mlops.core.classifier import frozen
from baerase_mlops.core.verification import ErasureVerifier
from baerase_mlops.engine import load_local_model, prepare_clean_data, run_scan, run_erase, scan_config_of, split_holdout
Z = "/root/.cache/baerase-mlops/zoo/mnist"
arch = sys.argv[1]
mut = load_local_model(glob.glob(f"{Z}/{arch}/badnets-seed0-*.pt")[0]); data = prepare_clean_data(None, mut, seed=0)
scan = run_scan(mut, data, device="cpu")
label = scan.verdict.flagged_classes[0]; norm = scan.verdict.classes[label].norm
print("scan", scan.verdict.summary(), "norm", norm, flush=True)
stop_set, verify_set = split_holdout(scan, 0.5)
models = {"original": mut.model}
for m in ("baerase", "nc_unlearning"):
    out = run_erase(mut, data, scan, UnlearningConfig(), m, "cpu", verification=None)
    models[m] = out.model
    print(m, "real_asr_after", out.metrics["real_asr_after"], flush=True)
clean = load_local_model(glob.glob(f"{Z}/{arch}/clean-seed0-*.pt")[0])
models["clean_model"] = clean.model
ver = ErasureVerifier(scan_config_of(scan.verdict), VerificationConfig(), "cpu")
for name, model in models.items():
    with frozen(model):
        for factor in (1.0, 1.5, 2.0, 3.0):
            t = ver.budgeted_trigger(model, scan.optimisation, verify_set, label, norm * factor, 1000 + label)
            print(json.dumps({"arch": arch, "model": name, "factor": factor, "budget": round(norm*factor,2), "verify_asr": round(t.asr,4), "search_asr": round(t.search_asr,4), "images": t.images}), flush=True)
