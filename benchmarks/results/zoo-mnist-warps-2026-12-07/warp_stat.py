import json, sys, math
sys.path.insert(0, "/work/main")
import torch
from baerase_mlops.core.detection import anomaly_indices
rows = [json.loads(l) for f in sys.argv[2:] for l in open(f)]
spread = sys.argv[1]
UNREACHED = 43.0
for d in rows:
    sizes = torch.tensor(d["sizes"], dtype=torch.float64)
    mag, centre, mad = anomaly_indices(sizes, 1.4826, 0.2, scale="log", spread=spread, centre="lower")
    signed = torch.where(sizes.log() <= centre, mag, -mag)
    median_reached = math.exp(centre) < UNREACHED
    k = int(torch.argmax(signed))
    flagged = [i for i, v in enumerate(signed.tolist()) if v > 3] if median_reached else []
    t = d["target"]
    print(f"{d['model'].split('/')[-3]:8s} {d['architecture']:13s} {d['attack']:15s} T={t} flagged={flagged} top={k} idx={signed[k]:.2f} target_idx={signed[t].item() if t is not None else float('nan'):.2f} median_reached={median_reached}")
