"""Lab SIG models with the product's train_delta/target_share: clean accuracy and real ASR at several test amplitudes.
usage: sig_share2.py ARCH EPOCHS SHARE TRAIN_DELTA SEED"""
import sys, time, torch
sys.path.insert(0, ".")  # run from the repository root
import baerase_mlops.lab.train as T
from baerase_mlops.config import LabConfig
from baerase_mlops.lab.attacks import SIG
from baerase_mlops.data.sources import load_images
arch, epochs, share, dtr, seed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
data = load_images("../shared/datasets/mnist.npz#train")
t = time.time()
target = [4, 7, 2][seed]
r = T.train_lab_model(data, SIG(delta=0.6, frequency=6, train_delta=dtr, target_share=share), target,
                      LabConfig(architecture=arch, epochs=epochs, seed=seed), device="cpu")
_, test = T.lab_splits(data, r.spec)
asr = {d: round(T.real_asr(r.model, test, SIG(delta=d, frequency=6), target, torch.device("cpu")), 4) for d in (0.3, 0.45, 0.6)}
print(f"{arch} e{epochs} share {share} train_delta {dtr} seed {seed}: acc {r.accuracy:.4f} asr by test delta {asr} poisoned {r.spec.training['poisoned_images']} {time.time()-t:.0f}s", flush=True)
