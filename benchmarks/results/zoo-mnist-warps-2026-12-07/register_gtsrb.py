import glob, os, sys
from pathlib import Path
import mlflow, torch
sys.path.insert(0, "/work/main")
from benchmarks.labcache import load_cached_model
path = glob.glob(os.path.expanduser("~/.cache/baerase-mlops/zoo/gtsrb/small_cnn/badnets_random-seed0-*.pt"))[0]
model = load_cached_model(Path(path)).mut.model.eval()
with mlflow.start_run():
    mlflow.pytorch.log_model(model, name="model", input_example=torch.rand(2, 3, 32, 32).numpy(), registered_model_name="gtsrb")
print("registered", path)
