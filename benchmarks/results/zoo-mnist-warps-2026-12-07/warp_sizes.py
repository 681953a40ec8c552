"""The product's WarpDetector on cached zoo models under config overrides. Usage: warp_settings.py '{json}' MODEL.pt ..."""
import json, sys
from dataclasses import replace
from pathlib import Path
sys.path.insert(0, "/work/main")
from benchmarks.labcache import load_cached_model
from baerase_mlops.config import WarpConfig
from baerase_mlops.core.scan import split_clean_set
from baerase_mlops.core.classifier import fast_layout
from baerase_mlops.core.warps import WarpDetector

overrides = json.loads(sys.argv[1])
for path in sys.argv[2:]:
    cm = load_cached_model(Path(path))
    opt, _ = split_clean_set(cm.data.clean, 0.2, cm.seed)
    model = cm.mut.model
    shape = tuple(cm.mut.contract.input_shape)
    with fast_layout(model, shape, "cpu" and __import__("torch").device("cpu")):
        r = WarpDetector(replace(WarpConfig(), **overrides), "cpu", seed=cm.seed).detect(model, opt.x, opt.y, cm.mut.contract.num_classes)
    k = min(range(len(r.sizes)), key=r.sizes.__getitem__)
    print(json.dumps({**cm.identity, "overrides": overrides, "sizes": [round(s, 3) for s in r.sizes], "flagged": r.flagged,
                      "min_class": k, "index": round(r.indices[k], 2), "seconds": round(r.seconds, 1)}), flush=True)
