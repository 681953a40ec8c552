"""Adversarial weight perturbation: does a backdoored model collapse onto its target? (ANP/BAN-style probe)
usage: anp.py '{json}' MODEL.pt ..."""
import json, sys, math, time
from pathlib import Path
import torch
from torch.nn import functional as F
from torch.func import functional_call
sys.path.insert(0, ".")  # run from the repository root
from benchmarks.labcache import load_cached_model
from baerase_mlops.core.scan import split_clean_set
from baerase_mlops.core.classifier import fast_layout, frozen

cfg = dict(eps=[0.05, 0.1, 0.2, 0.3], steps=20, lr=None, batch=256, mode="weights")
cfg.update(json.loads(sys.argv[1]))
torch.set_num_threads(1)
for path in sys.argv[2:]:
    cm = load_cached_model(Path(path))
    opt, held = split_clean_set(cm.data.clean, 0.2, cm.seed)
    model = cm.mut.model; shape = tuple(cm.mut.contract.input_shape); K = cm.mut.contract.num_classes
    dev = torch.device("cpu"); g = torch.Generator().manual_seed(cm.seed)
    tgt = cm.identity["target"]
    t0 = time.perf_counter(); rows = {}
    with fast_layout(model, shape, dev), frozen(model):
        params = {n: p.detach() for n, p in model.named_parameters()}
        names = [n for n, p in params.items() if p.dim() > 1]  # conv/linear weights
        for eps in cfg["eps"]:
            delta = {n: ((torch.rand(params[n].shape, generator=g) * 2 - 1) * eps).requires_grad_(True) for n in names}
            lr = cfg["lr"] or eps / 5
            for step in range(cfg["steps"]):
                b = torch.randint(len(opt.x), (cfg["batch"],), generator=g)
                w = {**params, **{n: params[n] * (1 + delta[n]) for n in names}}
                loss = F.cross_entropy(functional_call(model, w, (opt.x[b],)), opt.y[b])
                grads = torch.autograd.grad(loss, [delta[n] for n in names])
                with torch.no_grad():
                    for n, gr in zip(names, grads):
                        delta[n].add_(lr * gr.sign()).clamp_(-eps, eps)
            with torch.no_grad():
                w = {**params, **{n: params[n] * (1 + delta[n]) for n in names}}
                pred = functional_call(model, w, (held.x,)).argmax(1)
            acc = float((pred == held.y).float().mean())
            share = [float(((pred == k) & (held.y != k)).sum() / (held.y != k).sum()) for k in range(K)]
            top = max(range(K), key=share.__getitem__)
            rows[eps] = {"acc": round(acc, 3), "top": top, "top_share": round(share[top], 3),
                         "target_share": round(share[tgt], 3) if tgt is not None else None,
                         "second": round(sorted(share)[-2], 3)}
    print(json.dumps({"model": Path(path).parent.name + "/" + Path(path).stem[:20], "target": tgt, "rows": rows, "s": round(time.perf_counter() - t0, 1)}), flush=True)
