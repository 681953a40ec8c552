import json, sys, torch, glob
import torch.nn.functional as F
from baerase_mlops.config import UnlearningConfig
from baerase_mlops.core.classifier import frozen
from baerase_mlops.core.budgeted import trigger_asr
from baerase_mlops.core.metrics import predict
from baerase_mlops.core.triggers import stamp
from baerase_mlops.engine import load_local_model, prepare_clean_data, run_scan, run_erase, split_holdout
Z = "/root/.cache/baerase-mlops/zoo/mnist"
dev = torch.device("cpu")
def moved_asr(model, x, mask, pattern, label, stride):
    H, W = x.shape[2:]
    both = torch.cat([mask, pattern], 1)
    best = (0.0, None)
    for dy in range(-H + 1, H, stride):
        for dx in range(-W + 1, W, stride):
            shifted = torch.roll(both, (dy, dx), (2, 3))
            # no wrap-around: zero what rolled over the edge
            m = shifted[:, :1].clone()
            if dy > 0: m[..., :dy, :] = 0
            if dy < 0: m[..., dy:, :] = 0
            if dx > 0: m[..., :, :dx] = 0
            if dx < 0: m[..., :, dx:] = 0
            if float(m.sum()) < 0.5 * float(mask.sum()): continue
            a = trigger_asr(model, x, m, shifted[:, 1:], label, dev)
            if a > best[0]: best = (a, (dy, dx))
    return best
for path in sys.argv[1:]:
    mut = load_local_model(path); data = prepare_clean_data(None, mut, seed=0)
    scan = run_scan(mut, data, device="cpu")
    label = scan.verdict.flagged_classes[0]
    stop_set, verify_set = split_holdout(scan, 0.5)
    xv = verify_set.x[verify_set.y != label]
    g = torch.Generator().manual_seed(7)
    masks, patterns = scan.recovery.sample(label, 8, g)
    out = run_erase(mut, data, scan, UnlearningConfig(), "baerase", "cpu", verification=None)
    for name, model in (("original", mut.model), ("candidate", out.model)):
        with frozen(model):
            res = [moved_asr(model, xv, masks[i:i+1], patterns[i:i+1], label, 2) for i in range(3)]
        print(json.dumps({"model": path.split("/")[-1][:20], "which": name, "real_after": round(out.metrics["real_asr_after"], 4), "in_place": [round(trigger_asr(model, xv, masks[i:i+1], patterns[i:i+1], label, dev), 4) for i in range(3)], "moved_max": [(round(a, 4), p) for a, p in res], "images": len(xv)}), flush=True)
