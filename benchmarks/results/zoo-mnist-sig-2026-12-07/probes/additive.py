"""Per class smallest universal additive perturbation (RMS in [0,1] units) that sends 90% of other classes' images to it."""
import json, sys, math, time
from pathlib import Path
import torch
from torch.nn import functional as F
sys.path.insert(0, ".")  # run from the repository root
from benchmarks.labcache import load_cached_model
from baerase_mlops.core.scan import split_clean_set
from baerase_mlops.core.classifier import fast_layout, frozen
from baerase_mlops.core.warps import warp_indices

cfg = dict(conf=0.0, steps=200, batch=160, rounds=10, success=0.9, start=0.05, lr=0.01, norm="rms")
cfg.update(json.loads(sys.argv[1]))
torch.set_num_threads(1)
for path in sys.argv[2:]:
    cm = load_cached_model(Path(path))
    opt, _ = split_clean_set(cm.data.clean, 0.2, cm.seed)
    model = cm.mut.model; shape = tuple(cm.mut.contract.input_shape); K = cm.mut.contract.num_classes
    dev = torch.device("cpu")
    g = torch.Generator().manual_seed(cm.seed)
    x, y = opt.x, opt.y
    per = max(4, cfg["batch"] // K)
    pools = [torch.nonzero(y != k).squeeze(1) for k in range(K)]
    targets = torch.arange(K).repeat_interleave(per)
    t0 = time.perf_counter()
    with fast_layout(model, shape, dev), frozen(model):
        d = (torch.randn(K, *x.shape[1:], generator=g) * 1e-3).requires_grad_(True)
        o = torch.optim.Adam([d], lr=cfg["lr"])
        budget = torch.full((K,), cfg["start"]); best = torch.full((K,), math.inf); hits = torch.zeros(K)
        size_of = (lambda t: t.pow(2).mean(dim=(1, 2, 3)).sqrt()) if cfg["norm"] == "rms" else (lambda t: t.abs().mean(dim=(1,2,3)))
        for step in range(1, cfg["steps"] + 1):
            b = torch.cat([p[torch.randint(len(p), (per,), generator=g)] for p in pools])
            out = model((x[b] + d.repeat_interleave(per, 0)).clamp(0, 1))
            loss = F.cross_entropy(out, targets, reduction="none").view(K, per).mean(1)
            o.zero_grad(); loss.sum().backward(); o.step()
            with torch.no_grad():
                ok = (out.argmax(1) == targets) if cfg["conf"] <= 0 else (out.softmax(1).gather(1, targets[:, None]).squeeze(1) >= cfg["conf"])
                hits += ok.float().view(K, per).mean(1)
                s = size_of(d)
                d.mul_((budget / s.clamp_min(1e-12)).clamp(max=1).view(K, 1, 1, 1))
                if step % cfg["rounds"] == 0:
                    met = hits / cfg["rounds"] >= cfg["success"]
                    best = torch.where(met & (budget < best), budget, best)
                    budget = torch.where(met, budget * 0.8, budget * 1.25); hits.zero_()
    reached = torch.isfinite(best)
    sizes = torch.where(reached, best, budget)
    idx, med, mad = warp_indices(sizes, 1.4826, 0.2)
    k = int(sizes.argmin())
    tgt = cm.identity["target"]
    print(json.dumps({"model": Path(path).parent.name + "/" + Path(path).stem[:18], "target": tgt, "sizes": [round(float(s), 4) for s in sizes],
                      "reached": int(reached.sum()), "min_class": k, "index": round(idx[k], 2),
                      "target_index": round(idx[tgt], 2) if tgt is not None else None, "max_other": round(max(v for j, v in enumerate(idx) if j != tgt), 2),
                      "s": round(time.perf_counter() - t0, 1)}), flush=True)
