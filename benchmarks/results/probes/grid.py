import json, sys, time, torch, glob, math
from baerase_mlops.config import UnlearningConfig, VerificationConfig
from baerase_mlops.core.classifier import frozen
from baerase_mlops.core.budgeted import FoundTrigger, search_budgeted_trigger, trigger_asr
from baerase_mlops.engine import load_local_model, prepare_clean_data, run_scan, run_erase, split_holdout
Z = "/root/.cache/baerase-mlops/zoo/mnist"
arch, attack = sys.argv[1], sys.argv[2]
mut = load_local_model(glob.glob(f"{Z}/{arch}/{attack}-seed0-*.pt")[0]); data = prepare_clean_data(None, mut, seed=0)
scan = run_scan(mut, data, device="cpu")
label = scan.verdict.flagged_classes[0]; norm = scan.verdict.classes[label].norm
print("scan", scan.verdict.summary(), "norm", norm, flush=True)
stop_set, verify_set = split_holdout(scan, 0.5)
models = {}
for m in ("baerase", "nc_unlearning"):
    out = run_erase(mut, data, scan, UnlearningConfig(), m, "cpu", verification=None)
    models[m] = out.model
    print(m, "real_asr_after", out.metrics["real_asr_after"], flush=True)
clean = load_local_model(glob.glob(f"{Z}/{arch}/clean-seed0-*.pt")[0]); models["clean_model"] = clean.model
dev = torch.device("cpu")
xs = scan.optimisation.x[scan.optimisation.y != label]; xv = verify_set.x[verify_set.y != label]
C, H, W = xs.shape[1:]
def grid_search(model, budget, side_steps=30, refine=150, stride=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    side = max(1, min(H, int(math.sqrt(budget))))
    stride = stride or max(1, (H - side) // 3)
    best = None; t = time.time()
    for r in range(0, H - side + 1, stride):
        for c in range(0, W - side + 1, stride):
            m = torch.zeros(1, 1, H, W); m[..., r:r+side, c:c+side] = 1.0
            st = FoundTrigger(m, torch.rand(1, C, H, W, generator=g), 0.0)
            f = search_budgeted_trigger(model, xs, label, budget, steps=side_steps, restarts=1, lr=0.05, batch_size=64, generator=g, device=dev, start=st)
            if best is None or f.search_asr > best.search_asr: best = f
    f = search_budgeted_trigger(model, xs, label, budget, steps=refine, restarts=1, lr=0.05, batch_size=64, generator=g, device=dev, start=best)
    return f, time.time() - t
for name, model in models.items():
    with frozen(model):
        for factor in (1.0, 1.5):
            f, s = grid_search(model, norm * factor)
            print(json.dumps({"arch": arch, "attack": attack, "model": name, "factor": factor, "verify_asr": round(trigger_asr(model, xv, f.mask, f.pattern, label, dev), 4), "search_asr": round(f.search_asr, 4), "s": round(s, 1)}), flush=True)
