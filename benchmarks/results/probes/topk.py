import json, sys, time, torch, glob
import torch.nn.functional as F
from baerase_mlops.config import UnlearningConfig
from baerase_mlops.core.classifier import frozen
from baerase_mlops.core.budgeted import project_to_budget, trigger_asr
from baerase_mlops.core.triggers import stamp
from baerase_mlops.engine import load_local_model, prepare_clean_data, run_scan, run_erase, split_holdout
Z = "/root/.cache/baerase-mlops/zoo/mnist"
arch, attack = sys.argv[1], sys.argv[2]
mut = load_local_model(glob.glob(f"{Z}/{arch}/{attack}-seed0-*.pt")[0]); data = prepare_clean_data(None, mut, seed=0)
scan = run_scan(mut, data, device="cpu")
label = scan.verdict.flagged_classes[0]; norm = scan.verdict.classes[label].norm
stop_set, verify_set = split_holdout(scan, 0.5)
dev = torch.device("cpu")
def search(model, x, budget, keep, steps=150, restarts=2, lr=0.05, bs=64, seed=0):
    g = torch.Generator().manual_seed(seed); best = None
    tgt = torch.full((bs,), label)
    for r in range(restarts):
        mask = project_to_budget(torch.rand(1, 1, *x.shape[2:], generator=g), budget).requires_grad_(True)
        pl = torch.randn(1, *x.shape[1:], generator=g).requires_grad_(True)
        opt = torch.optim.Adam([mask, pl], lr=lr)
        for s in range(steps):
            b = x[torch.randint(0, len(x), (bs,), generator=g)]
            ce = F.cross_entropy(model(stamp(b, mask, torch.sigmoid(pl))), tgt, reduction="none")
            k = max(1, int(keep * bs))
            loss = ce.topk(k, largest=False).values.mean()
            opt.zero_grad(); loss.backward(); opt.step()
            with torch.no_grad(): mask.copy_(project_to_budget(mask, budget))
        m, p = mask.detach(), torch.sigmoid(pl).detach()
        a = trigger_asr(model, x, m, p, label, dev)
        if best is None or a > best[0]: best = (a, m, p)
    return best
models = {}
for m in ("baerase", "nc_unlearning"):
    out = run_erase(mut, data, scan, UnlearningConfig(), m, "cpu", verification=None)
    models[m] = (out.model, out.metrics["real_asr_after"])
clean = load_local_model(glob.glob(f"{Z}/{arch}/clean-seed0-*.pt")[0]); models["clean_model"] = (clean.model, None)
xs = scan.optimisation.x[scan.optimisation.y != label]; xv = verify_set.x[verify_set.y != label]
for name, (model, real) in models.items():
    with frozen(model):
        for keep in (1.0, 0.25, 0.1):
            t = time.time(); a, m, p = search(model, xs, norm, keep)
            print(json.dumps({"arch": arch, "attack": attack, "model": name, "real": real, "keep": keep, "search_asr": round(a, 4), "verify_asr": round(trigger_asr(model, xv, m, p, label, dev), 4), "s": round(time.time() - t, 1)}), flush=True)
