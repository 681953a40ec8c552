import json
import os
import sys
import time
from dataclasses import replace

import numpy as np
import torch

from baerase_mlops.config import ScanConfig, UnlearningConfig
from baerase_mlops.data import clean_subset, load_images
from baerase_mlops.engine import load_local_model, prepare_clean_data, run_erase, run_scan
from baerase_mlops.lab.train import lab_splits

root = "/tmp/pytest-of-root/pytest-current/shared"
mut = load_local_model(f"{root}/lab_models/badnets/model.pt")
path = "/work/scratch/s3clean.npz"
if not os.path.exists(path):
    mnist = load_images("builtin:mnist")
    train, _ = lab_splits(mnist, mut.lab_spec)
    clean = clean_subset(train, 0.25, seed=0)
    np.savez(path, x=(clean.x.permute(0, 2, 3, 1) * 255).round().byte().numpy(), y=clean.y.numpy())
data = prepare_clean_data(path, mut)
sp = "/work/scratch/s3scan.pt"
if os.path.exists(sp):
    scan = torch.load(sp, weights_only=False)
else:
    t0 = time.time()
    scan = run_scan(mut, data, ScanConfig(), device="cpu")
    torch.save(scan, sp)
    print("scan %.0fs" % (time.time() - t0))
print(scan.verdict.summary() if hasattr(scan.verdict, "summary") else scan.verdict.flagged_classes, flush=True)
for v in sys.argv[1:]:
    o = json.loads(v)
    t0 = time.time()
    out = run_erase(mut, data, scan, replace(UnlearningConfig(), **o), device="cpu")
    m = out.metrics
    rs = out.verification.rescan if out.verification else None
    print("rescan", [(c.label, round(c.norm, 1), round(c.anomaly_index, 2)) for c in rs.classes] if rs else None)
    print(
        v,
        "real %s drop %.2f steps %d verified=%s %s (%.0fs)"
        % (
            m.get("real_asr_after"),
            (m["accuracy_before"] - m["accuracy_after"]) * 100,
            m["unlearning_steps"],
            out.verified,
            (out.verification.summary() if out.verification else ""),
            time.time() - t0,
        ),
        flush=True,
    )
