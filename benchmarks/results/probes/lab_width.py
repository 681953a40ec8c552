import time, json, sys
from pathlib import Path
from baerase_mlops.config import LabConfig
from baerase_mlops.data import load_images
from baerase_mlops.lab.attacks import make_attack
from baerase_mlops.lab.train import train_lab_model
from baerase_mlops.lab.spec import save_lab_model
from baerase_mlops.engine import load_local_model, prepare_clean_data, run_scan, run_erase
sys.path.insert(0, ".")
from tests.conftest import LAB_MODELS
arch, width = sys.argv[1], int(sys.argv[2])
names = sys.argv[3].split(",") if len(sys.argv) > 3 else list(LAB_MODELS)
mnist = load_images("builtin:mnist")
for name in names:
    e = LAB_MODELS[name]
    rec = {"arch": arch, "width": width, "name": name}
    t = time.time()
    attack = make_attack(e["attack"], mnist.input_shape, **e["kwargs"])
    r = train_lab_model(mnist, attack, e["target"], LabConfig(architecture=arch, width=width))
    rec.update(train_s=round(time.time()-t,1), acc=r.accuracy, asr=r.asr)
    out = Path(f"/tmp/lab_width/{arch}{width}-{name}"); out.mkdir(parents=True, exist_ok=True)
    save_lab_model(r.model, r.spec, out/"model.pt")
    mut = load_local_model(out/"model.pt"); data = prepare_clean_data(None, mut)
    t = time.time(); scan = run_scan(mut, data, device="cpu")
    rec.update(scan_s=round(time.time()-t,1), flagged=scan.verdict.flagged_classes, index=round(scan.verdict.anomaly_index,2), target=e["target"])
    if name in ("badnets", "trojan", "blended"):
        t = time.time(); o = run_erase(mut, data, scan, device="cpu"); m = o.metrics
        rec.update(erase_s=round(time.time()-t,1), verified=o.verified, **{k: round(m[k],4) for k in ("real_asr_before","real_asr_after","accuracy_before","accuracy_after","recovered_asr_after","verified_asr") if m.get(k) is not None})
    print(json.dumps(rec), flush=True)
