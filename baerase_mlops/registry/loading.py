"""Load a model from the registry (or a run, or disk) as untrusted input.

Three formats are recognised in the downloaded folder:

* ``pt2``: an MLflow pytorch model saved with torch.export (MLflow 3's default). It is
  loaded with ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`` so that MLflow checks that
  the archive holds no pickle payload before ``torch.export.load`` touches it.
* ``state_dict+spec``: a lab model folder (``model.pt`` + ``model.json``), read with
  torch's weights-only loader.
* ``pickle``: an MLflow pytorch model saved with pickle. Unpickling runs code, so it is
  refused unless the user passes the trust flag; even then modelscan scans it first, and
  an explicit ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`` in the environment wins.

The input contract is read from the MLflow signature (a float32 tensor of shape
(-1, C, H, W), outputs (-1, K)) and the model's metadata (``classes``, ``normalization``,
and, for lab models, ``baerase_lab_spec``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from baerase_mlops.contract import InputContract
from baerase_mlops.errors import ModelError, RegistryError
from baerase_mlops.engine import ModelUnderTest, apply_user_normalization, lab_contract
from baerase_mlops.lab.spec import ModelSpec, load_lab_model, spec_path_for
from baerase_mlops.registry.resolve import ModelRef

PICKLE_SWITCH = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
LAB_SPEC_KEY = "baerase_lab_spec"


def download_model(ref: ModelRef, dst: Path) -> Path:
    """The model's files in a local folder (a local path is used where it lies)."""
    if ref.kind == "local":
        return Path(ref.download_uri)
    import mlflow
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # our own bars are enough in a job log
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=ref.download_uri, dst_path=str(dst)))
    except (MlflowException, OSError) as exc:
        raise RegistryError(f"{ref.describe()}: cannot download the model's files ({exc})") from exc


def detect_format(path: Path) -> str:
    if path.is_file():
        if path.suffix == ".pt" and spec_path_for(path).is_file():
            return "state_dict+spec"
        raise ModelError(f"{path}: a model file needs its spec beside it ({spec_path_for(path).name}), or give an MLflow model folder")
    if (path / "MLmodel").is_file():
        if (path / "data" / "model.pt2").is_file():
            return "pt2"
        if (path / "data" / "model.pth").is_file():
            return "pickle"
        raise ModelError(f"{path}: an MLflow model, but not a PyTorch one this tool can load (no data/model.pt2 or data/model.pth)")
    if (path / "model.pt").is_file() and (path / "model.json").is_file():
        return "state_dict+spec"
    raise ModelError(f"{path}: not a model this tool can load (expected an MLflow pytorch model or a lab model.pt + model.json)")


@contextmanager
def pickle_switch(allowed: bool) -> Iterator[None]:
    """Set MLflow's pickle switch for the duration, and put back what was there."""
    before = os.environ.get(PICKLE_SWITCH)
    os.environ[PICKLE_SWITCH] = "true" if allowed else "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PICKLE_SWITCH, None)
        else:
            os.environ[PICKLE_SWITCH] = before


def check_pickle_consent(trust_pickle: bool, where: str) -> None:
    """The user's trust flag and MLflow's own switch must agree before anything is unpickled."""
    if not trust_pickle:
        raise ModelError(
            f"{where} is a pickled model: loading it would run code from the registry. "
            "Re-log it with serialization_format='pt2' (MLflow's default), or pass the trust flag "
            "(--trust-pickle / -P trust_pickle=true) to scan it with modelscan and load it"
        )
    switch = os.environ.get(PICKLE_SWITCH, "").strip().lower()
    if switch in ("false", "0", "no", "off"):
        raise ModelError(f"{where}: the trust flag was given, but {PICKLE_SWITCH}=false in this environment forbids unpickling; unset it to proceed")


def modelscan_or_refuse(path: Path, where: str) -> dict[str, Any]:
    """Scan the pickle with modelscan; refuse on any finding or on files it could not read."""
    from modelscan.modelscan import ModelScan

    report = ModelScan().scan(str(path))
    issues = report.get("issues", [])
    errors = report.get("errors", [])
    if issues or errors:
        found = "; ".join(f"{i.get('severity')}: {i.get('description')} in {i.get('source')}" for i in issues[:5])
        failed = "; ".join(str(e.get("description", e)) for e in errors[:3])
        raise ModelError(f"{where}: modelscan refused the pickle ({found or failed})")
    if not report.get("summary", {}).get("scanned", {}).get("total_scanned"):
        raise ModelError(f"{where}: modelscan found no pickle it could check; refusing to unpickle what was not scanned")
    return report


def contract_from_mlmodel(mlmodel, where: str, metadata: dict[str, Any]) -> InputContract:
    signature = mlmodel.signature
    if signature is None or signature.inputs is None:
        raise ModelError(f"{where}: the model has no signature, so its input shape is unknown; log it with input_example=<a batch of images>")
    if not signature.inputs.is_tensor_spec() or len(signature.inputs.inputs) != 1:
        raise ModelError(f"{where}: the model's input is not a single image tensor ({signature.inputs})")
    spec = signature.inputs.inputs[0]
    shape = tuple(spec.shape)
    if len(shape) != 4 or shape[0] != -1 or min(shape[1:]) < 1:
        raise ModelError(f"{where}: the model takes a tensor of shape {list(shape)}; an image classifier takes (-1, C, H, W)")
    if str(spec.type) != "float32":
        raise ModelError(f"{where}: the model takes {spec.type} tensors; the contract is float32 images in [0, 1]")
    classes = metadata.get("classes")
    if classes is None and signature.outputs is not None and signature.outputs.is_tensor_spec():
        out_shape = tuple(signature.outputs.inputs[0].shape)
        if len(out_shape) == 2 and out_shape[1] > 1:
            classes = [str(i) for i in range(out_shape[1])]
    if classes is None:
        raise ModelError(f"{where}: the number of classes is unknown: log the model with an output signature or metadata={{'classes': [...]}}")
    normalization = metadata.get("normalization")
    if normalization is not None:
        normalization = {**normalization, "applied_by": "model"}
    return InputContract(tuple(int(v) for v in shape[1:]), tuple(str(c) for c in classes), normalization, source=f"MLflow signature of {where}")


def load_model_under_test(ref: ModelRef, path: Path, *, trust_pickle: bool = False, mean=None, std=None) -> ModelUnderTest:
    """Load the downloaded model at ``path`` safely, with its input contract."""
    where = ref.describe()
    fmt = detect_format(path)
    if fmt == "state_dict+spec":
        model, spec = load_lab_model(path if path.is_file() else path / "model.pt")
        return apply_user_normalization(ModelUnderTest(model, lab_contract(spec, f"lab spec of {where}"), where, fmt, spec), mean, std)
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    mlmodel = Model.load(str(path / "MLmodel"))
    metadata = dict(mlmodel.metadata or {})
    contract = contract_from_mlmodel(mlmodel, where, metadata)
    if fmt == "pickle":
        check_pickle_consent(trust_pickle, where)
        modelscan_or_refuse(path, where)
    try:
        with pickle_switch(fmt == "pickle"):
            model = mlflow.pytorch.load_model(str(path))
    except MlflowException as exc:
        raise ModelError(f"{where}: MLflow refused to load the model: {exc.message}") from exc
    except Exception as exc:  # a broken archive fails in many ways inside torch
        raise ModelError(f"{where}: the model could not be loaded ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    lab = metadata.get(LAB_SPEC_KEY)
    spec = ModelSpec.from_json(lab, where) if isinstance(lab, dict) else None
    return apply_user_normalization(ModelUnderTest(model, contract, where, fmt, spec), mean, std)
