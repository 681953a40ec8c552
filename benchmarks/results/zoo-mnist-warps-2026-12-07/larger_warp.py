"""Probe: would a larger-warp check separate a surviving WaNet from an erased one? small_cnn WaNet seed 0."""
import glob, json, os, sys
from pathlib import Path
sys.path.insert(0, "/work/main")
import torch
from benchmarks.labcache import load_cached_model
from baerase_mlops.config import UnlearningConfig
from baerase_mlops.engine import run_scan, run_erase
from baerase_mlops.core.warps import search_budgeted_warp, warp_asr
from baerase_mlops.lab.train import true_attack
from baerase_mlops.core.metrics import predict

seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
path = glob.glob(os.path.expanduser(f"~/.cache/baerase-mlops/zoo/mnist/small_cnn/wanet-seed{seed}-*.pt"))[0]
cm = load_cached_model(Path(path))
scan = run_scan(cm.mut, cm.data, device="cpu")
t = cm.identity["target"]
v = scan.verdict
warps = [c.warp for c in v.classes]
refs = sorted((k for k in range(10) if k != t), key=lambda k: warps[k])[:2]
attack, target = true_attack(cm.mut.lab_spec)
ev = cm.data.evaluation
def real(model):
    x = ev.x[ev.y != target]
    return float((predict(model, attack.apply(x), torch.device("cpu")) == target).float().mean())
for method in ["nc_unlearning", "baerase"]:
    out = run_erase(cm.mut, cm.data, scan, method=method, device="cpu", verification=None)
    m = out.model
    row = {"seed": seed, "method": method, "target": t, "warp_size": warps[t], "refs": refs, "real_asr": real(m)}
    x_s, x_v = scan.optimisation, scan.holdout
    for factor in [1, 2, 3, 4, 6]:
        budget = warps[t] * factor
        res = {}
        for k in [t, *refs]:
            flow = search_budgeted_warp(m, x_s.x[x_s.y != k], k, budget, steps=150, grid=8, lr=0.05, batch_size=64,
                                        generator=torch.Generator().manual_seed(1000 + k), device=torch.device("cpu"))
            xa = torch.cat([x_s.x[x_s.y != k], x_v.x[x_v.y != k]])
            res[k] = round(warp_asr(m, xa, flow, k, torch.device("cpu")), 4)
        row[f"x{factor}"] = res
    print(json.dumps(row), flush=True)
