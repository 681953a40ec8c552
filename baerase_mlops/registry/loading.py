"""Load a model from the registry (or a run, or disk) as untrusted input.

Three formats are recognised in the downloaded folder:

* ``pt2``: an MLflow pytorch model saved with torch.export (MLflow 3's default). MLflow's
  check that the archive holds no pickle payload always runs before ``torch.export.load``.
* ``state_dict+spec``: a lab model folder (``model.pt`` + ``model.json``), read with
  torch's weights-only loader.
* ``pickle``: an MLflow pytorch model saved with pickle. Unpickling runs code, so it is
  refused unless the user passes the trust flag; even then modelscan scans it, an own walk
  of its opcodes refuses every global outside an allow-list (``pickle_guard``) before
  anything is unpickled, torch's weights-only unpickler loads it, and an explicit
  ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`` in the environment wins.

Nothing from the model's folder is ever imported or run: ``mlflow.pytorch.load_model`` is
not used, because it puts the model's ``code/`` folder first on ``sys.path`` (a planted
package named like one this tool imports later would run) and imports the pickle module
named in ``data/pickle_module_info.txt``. A model that carries ``code/`` or a custom
pyfunc ``loader_module`` is refused unless the user passes the trust flag, and even then
that code is ignored. Every package the tool needs is imported before a model's weights are
deserialised; the checks that can refuse a model (its code, the pickle consent, the allow-list
walk, modelscan) run first, so that a refusal comes in a second, not after those imports.

The input contract is read from the MLflow signature (a float32 tensor of shape
(-1, C, H, W), outputs (-1, K)) and the model's metadata (``classes``, ``normalization``,
and, for lab models, ``baerase_lab_spec``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch import nn

from baerase_mlops.contract import InputContract
from baerase_mlops.engine import ModelUnderTest, apply_user_normalization, lab_contract
from baerase_mlops.errors import ModelError, RegistryError
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
        from baerase_mlops.registry.tracking import server_unreachable

        if server_unreachable(exc):
            raise  # the job's registry-failure line says which server, and what it was doing
        raise RegistryError(f"{ref.describe()}: cannot download the model's files ({exc})") from exc


def detect_format(path: Path) -> str:
    if path.is_file():
        if path.suffix == ".pt" and spec_path_for(path).is_file():
            return "state_dict+spec"
        raise ModelError(
            f"{path}: a model file needs its spec beside it ({spec_path_for(path).name}), "
            "or give an MLflow model folder"
        )
    if (path / "MLmodel").is_file():
        if (path / "data" / "model.pt2").is_file():
            return "pt2"
        if (path / "data" / "model.pth").is_file():
            return "pickle"
        raise ModelError(
            f"{path}: an MLflow model, but not a PyTorch one this tool can load (no data/model.pt2 or data/model.pth)"
        )
    if (path / "model.pt").is_file() and (path / "model.json").is_file():
        return "state_dict+spec"
    raise ModelError(
        f"{path}: not a model this tool can load (expected an MLflow pytorch model or a lab model.pt + model.json)"
    )


# Everything the tool imports lazily after a model is loaded (the data sources, validation,
# the report, modelscan), imported first so that no name can resolve to a model's files.
# Not torchvision (4.8 s of every job's start on one core, for nothing): the job imports it
# only to build a lab ResNet-18 from its spec, which happens while loading, before any weights
# are read, and a lab model folder carries no code. Not scikit-learn either: builtin:digits
# reads its bundled file without importing it (data/sources.py).
TOOL_IMPORTS = (
    "mlxtend.data",
    "great_expectations",
    "great_expectations.expectations",
    "pandas",
    "matplotlib.pyplot",
    "PIL.Image",
    "boto3",
    "botocore.config",
    "modelscan.modelscan",
    "mlflow.models",
    "mlflow.data",
    "mlflow.pytorch",
)
PYTORCH_LOADER = "mlflow.pytorch"


def import_tool_dependencies() -> None:
    """Import every package the tool needs before any model is loaded (an optional one that
    is not installed is skipped: the code that needs it says so)."""
    import importlib

    for name in TOOL_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


@contextmanager
def sys_path_unchanged(folder: Path) -> Iterator[None]:
    """Run the block with ``sys.path`` as it was, and never with ``folder`` (or anything under it) on it."""
    before = list(sys.path)
    root = str(folder.resolve())
    sys.path[:] = [p for p in before if not _under(p, root)]
    try:
        yield
    finally:
        sys.path[:] = [p for p in before if not _under(p, root)]


def _under(entry: str, root: str) -> bool:
    try:
        resolved = str(Path(entry or ".").resolve())
    except OSError:
        return False
    return resolved == root or resolved.startswith(root + os.sep)


def code_carried(path: Path, mlmodel) -> list[str]:
    """What in the MLflow model folder would run code if MLflow loaded it: a ``code/`` folder
    (``code_paths``) or a pyfunc ``loader_module`` other than MLflow's pytorch flavor."""
    found = []
    pytorch_conf = (mlmodel.flavors or {}).get("pytorch", {})
    code_dirs = {d for d in ("code", pytorch_conf.get("code")) if d} | {
        (mlmodel.flavors or {}).get("python_function", {}).get("code") or "code"
    }
    for name in sorted(code_dirs):
        if (path / name).exists():
            found.append(
                f"{name}/ (code_paths: {', '.join(sorted(p.name for p in (path / name).iterdir())) or 'empty'})"
            )
    loader = (mlmodel.flavors or {}).get("python_function", {}).get("loader_module")
    if loader and loader != PYTORCH_LOADER:
        found.append(f"loader_module {loader!r}")
    return found


def check_code_consent(found: list[str], trust: bool, where: str) -> None:
    if found and not trust:
        raise ModelError(
            f"{where} carries code: {'; '.join(found)}. This tool never runs a model's code; pass the trust flag "
            "(--trust-pickle / -P trust_pickle=true) to load its weights anyway, with that code ignored"
        )


def pickle_switch_forbids() -> bool:
    return os.environ.get(PICKLE_SWITCH, "").strip().lower() in ("false", "0", "no", "off")


def check_pickle_consent(trust_pickle: bool, where: str) -> None:
    """The user's trust flag and MLflow's own switch must agree before anything is unpickled."""
    if not trust_pickle:
        raise ModelError(
            f"{where} is a pickled model: loading it would run code from the registry. "
            "Re-log it with serialization_format='pt2' (MLflow's default), or pass the trust flag "
            "(--trust-pickle / -P trust_pickle=true) to scan it with modelscan and load it"
        )
    if pickle_switch_forbids():
        raise ModelError(
            f"{where}: the trust flag was given, but {PICKLE_SWITCH}=false in this environment forbids unpickling; "
            "unset it to proceed"
        )


def run_modelscan(path: Path) -> dict[str, Any]:
    """modelscan's report on ``path`` (it reads pickles without unpickling them)."""
    from modelscan.modelscan import ModelScan

    return ModelScan().scan(str(path))


def modelscan_refusal(report: dict[str, Any], where: str) -> str | None:
    """Why modelscan's report refuses the pickle (a finding, a file it could not read, nothing scanned), or None."""
    issues = report.get("issues", [])
    errors = report.get("errors", [])
    if issues or errors:
        found = "; ".join(f"{i.get('severity')}: {i.get('description')} in {i.get('source')}" for i in issues[:5])
        failed = "; ".join(str(e.get("description", e)) for e in errors[:3])
        return f"{where}: modelscan refused the pickle ({found or failed})"
    if not report.get("summary", {}).get("scanned", {}).get("total_scanned"):
        return f"{where}: modelscan found no pickle it could check; refusing to unpickle what was not scanned"
    return None


def load_pickled_model(model_file: Path, where: str, trust_pickle: bool, evidence: dict[str, Any]):
    """The allow-list walk (before the trust flag is even looked at: a payload is named either
    way), the consent, modelscan (its report into ``evidence``), then torch's weights-only
    unpickler with only the module classes the walk allowed: nothing is unpickled unless all agree."""
    import torch

    from baerase_mlops.registry.pickle_guard import check_pickle_allow_list, module_classes

    if trust_pickle and not pickle_switch_forbids():
        evidence["modelscan"] = run_modelscan(model_file.parent)  # recorded even when the walk refuses
    allowed = check_pickle_allow_list(model_file, where)
    check_pickle_consent(trust_pickle, where)
    refusal = modelscan_refusal(evidence["modelscan"], where)
    if refusal:
        raise ModelError(refusal)
    import_tool_dependencies()
    try:
        with torch.serialization.safe_globals(module_classes(allowed)):
            return torch.load(model_file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's own unpickler refused something the walk let through
        raise ModelError(
            f"{where}: torch's weights-only unpickler refused the pickle ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc


def load_pt2_model(model_file: Path, where: str):
    """MLflow's pickle-free check of the archive (always, whatever the switch says), then torch.export."""
    import torch
    from mlflow.exceptions import MlflowException
    from mlflow.pytorch import _validate_pt2_archive_is_pickle_free

    try:
        _validate_pt2_archive_is_pickle_free(str(model_file))
    except MlflowException as exc:
        raise ModelError(f"{where}: the pt2 archive is not pickle-free: {exc.message}") from exc
    import_tool_dependencies()
    return torch.export.load(str(model_file)).module()


def contract_from_mlmodel(mlmodel, where: str, metadata: dict[str, Any]) -> InputContract:
    signature = mlmodel.signature
    if signature is None or signature.inputs is None:
        raise ModelError(
            f"{where}: the model has no signature, so its input shape is unknown; "
            "log it with input_example=<a batch of images>"
        )
    if not signature.inputs.is_tensor_spec() or len(signature.inputs.inputs) != 1:
        raise ModelError(f"{where}: the model's input is not a single image tensor ({signature.inputs})")
    spec = signature.inputs.inputs[0]
    shape = tuple(spec.shape)
    if len(shape) != 4 or shape[0] != -1 or min(shape[1:]) < 1:
        raise ModelError(
            f"{where}: the model takes a tensor of shape {list(shape)}; an image classifier takes (-1, C, H, W)"
        )
    if str(spec.type) != "float32":
        raise ModelError(f"{where}: the model takes {spec.type} tensors; the contract is float32 images in [0, 1]")
    classes = metadata.get("classes")
    if classes is None and signature.outputs is not None and signature.outputs.is_tensor_spec():
        out_shape = tuple(signature.outputs.inputs[0].shape)
        if len(out_shape) == 2 and out_shape[1] > 1:
            classes = [str(i) for i in range(out_shape[1])]
    if classes is None:
        raise ModelError(
            f"{where}: the number of classes is unknown: log the model with an output signature or "
            "metadata={'classes': [...]}"
        )
    normalization = metadata.get("normalization")
    if normalization is not None:
        normalization = {**normalization, "applied_by": "model"}
    return InputContract(
        tuple(int(v) for v in shape[1:]),
        tuple(str(c) for c in classes),
        normalization,
        source=f"MLflow signature of {where}",
    )


def load_model_under_test(
    ref: ModelRef,
    path: Path,
    *,
    trust_pickle: bool = False,
    mean=None,
    std=None,
    evidence: dict[str, Any] | None = None,
) -> ModelUnderTest:
    """Load the downloaded model at ``path`` safely, with its input contract. ``evidence``
    receives what the safety checks produced (``modelscan``: its report) for the run."""
    where = ref.describe()
    evidence = {} if evidence is None else evidence
    fmt = detect_format(path)
    if fmt == "state_dict+spec":
        import_tool_dependencies()
        model, spec = load_lab_model(path if path.is_file() else path / "model.pt")
        return apply_user_normalization(
            ModelUnderTest(model, lab_contract(spec, f"lab spec of {where}"), where, fmt, spec), mean, std
        )
    from mlflow.models import Model

    mlmodel = Model.load(str(path / "MLmodel"))
    check_code_consent(code_carried(path, mlmodel), trust_pickle, where)
    metadata = dict(mlmodel.metadata or {})
    contract = contract_from_mlmodel(mlmodel, where, metadata)
    with sys_path_unchanged(path):
        if fmt == "pickle":
            model = load_pickled_model(path / "data" / "model.pth", where, trust_pickle, evidence)
        else:
            try:
                model = load_pt2_model(path / "data" / "model.pt2", where)
            except ModelError:
                raise
            except Exception as exc:  # a broken archive fails in many ways inside torch
                raise ModelError(
                    f"{where}: the model could not be loaded ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''})"
                ) from exc
    if not isinstance(model, nn.Module):
        raise ModelError(f"{where}: the model file holds a {type(model).__name__}, not a torch.nn.Module")
    lab = metadata.get(LAB_SPEC_KEY)
    spec = ModelSpec.from_json(lab, where) if isinstance(lab, dict) else None
    return apply_user_normalization(ModelUnderTest(model, contract, where, fmt, spec), mean, std)
