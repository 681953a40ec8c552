"""Per class: how aligned are the input gradients toward class k over clean images of other classes?
usage: coherence.py '{json}' MODEL.pt ..."""
import json, sys, time
from pathlib import Path
import torch
from torch.nn import functional as F
sys.path.insert(0, ".")  # run from the repository root
from benchmarks.labcache import load_cached_model
from baerase_mlops.core.scan import split_clean_set
from baerase_mlops.core.classifier import fast_layout, frozen
from baerase_mlops.core.warps import warp_indices

cfg = dict(n=256, kind="logp")
cfg.update(json.loads(sys.argv[1]))
torch.set_num_threads(1)
def up_index(v):
    # upward MAD index on log values: flip sign so warp_indices (downward) measures upward
    idx, med, mad = warp_indices([1.0 / max(x, 1e-9) for x in v], 1.4826, 0.2)
    return idx
for path in sys.argv[2:]:
    cm = load_cached_model(Path(path))
    opt, held = split_clean_set(cm.data.clean, 0.2, cm.seed)
    model = cm.mut.model; shape = tuple(cm.mut.contract.input_shape); K = cm.mut.contract.num_classes
    dev = torch.device("cpu"); g = torch.Generator().manual_seed(cm.seed); tgt = cm.identity["target"]
    t0 = time.perf_counter(); coh = []
    with fast_layout(model, shape, dev), frozen(model):
        for k in range(K):
            pool = torch.nonzero(opt.y != k).squeeze(1)
            idx = pool[torch.randperm(len(pool), generator=g)[: cfg["n"]]]
            x = opt.x[idx].clone().requires_grad_(True)
            out = model(x)
            if cfg["kind"] == "logp":
                s = F.log_softmax(out, 1)[:, k]
            else:
                other = out.clone(); other[:, k] = -1e9
                s = out[:, k] - other.max(1).values
            (gr,) = torch.autograd.grad(s.sum(), x)
            gr = gr.flatten(1); gr = gr / gr.norm(dim=1, keepdim=True).clamp_min(1e-12)
            coh.append(float(gr.mean(0).norm()))
    ind = up_index(coh)
    k = max(range(K), key=coh.__getitem__)
    print(json.dumps({"model": Path(path).parent.name + "/" + Path(path).stem[:20], "target": tgt, "coh": [round(c, 3) for c in coh],
                      "top": k, "index": round(ind[k], 2), "target_index": round(ind[tgt], 2) if tgt is not None else None,
                      "s": round(time.perf_counter() - t0, 1)}), flush=True)
