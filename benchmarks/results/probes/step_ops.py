"""A default BAERASE recovery on a lab model (its model.pt path), 60 steps under torch.profiler: which ops a step spends its time in. FLUSH=1 flushes denormal floats first."""
import sys, dataclasses
import torch
from torch.profiler import profile, ProfilerActivity
torch.set_num_threads(1)
import os
if os.environ.get("FLUSH") == "1": print("flush denormal", torch.set_flush_denormal(True))
from baerase_mlops.engine import load_local_model, prepare_clean_data
from baerase_mlops.config import ScanConfig
from baerase_mlops.core.recovery import RECOVERY_METHODS
from baerase_mlops.core.scan import split_clean_set
mut = load_local_model(sys.argv[1])
data = prepare_clean_data(None, mut)
cfg = ScanConfig()
rec = dataclasses.replace(cfg.recovery, steps=60, early_stop_rounds=1000)
opt, hold = split_clean_set(data.clean, cfg.holdout_fraction, rec.seed)
print("optimisation images", len(opt), "holdout", len(hold))
model = mut.model
with profile(activities=[ProfilerActivity.CPU]) as prof:
    r = RECOVERY_METHODS[cfg.method](rec, torch.device("cpu"), lambda *a: None).recover(model, opt.x, opt.y, mut.contract.num_classes)
print("60 steps: recovery seconds", r.seconds)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
