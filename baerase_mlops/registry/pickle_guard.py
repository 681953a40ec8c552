"""An allow-list of the globals a pickled PyTorch model may name, checked by walking the
pickle's opcodes with ``pickletools`` BEFORE anything is unpickled.

modelscan looks for known-dangerous globals (a deny-list); a payload that calls something
it does not list (``timeit.timeit`` with an ``__import__('os').system(...)`` string, for
one) passes it. This check is the other way round: a state_dict or an ``nn.Module`` pickle
needs only torch's tensor/storage reconstruction functions, ``collections.OrderedDict``,
numpy's array reconstruction, and the module classes themselves; anything else is refused.
Module classes are allowed only from ``torch.nn.modules`` and this tool's lab, and only when
they are already imported (resolving them never imports anything).
"""

from __future__ import annotations

import io
import pickletools
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from baerase_mlops.errors import ModelError

# Exact (module, name) pairs a tensor, a storage, a state_dict or a module's attributes need.
ALLOWED_GLOBALS = frozenset(
    {
        ("collections", "OrderedDict"),
        ("builtins", "set"),
        ("__builtin__", "set"),
        ("builtins", "frozenset"),
        ("__builtin__", "frozenset"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch._utils", "_rebuild_parameter_with_state"),
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("torch", "Size"),
        ("torch", "device"),
        ("torch.storage", "UntypedStorage"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)
# Modules whose nn.Module subclasses (and nothing else) a pickled model may name.
MODULE_CLASS_PACKAGES = ("torch.nn.modules.", "baerase_mlops.lab.models")

_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_MEMO_OPS = {"BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"}
_GET_OPS = {"BINGET", "LONG_BINGET", "GET"}


@dataclass(frozen=True)
class PickleGlobal:
    module: str
    name: str
    opcode: str
    position: int  # byte offset in the pickle
    member: str  # the pickle's file (inside a torch zip archive, its entry name)

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.name}"


def pickle_globals(data: bytes, member: str) -> list[PickleGlobal]:
    """Every global the pickle names (GLOBAL, INST, STACK_GLOBAL). A STACK_GLOBAL whose
    module and name are not plain strings pushed just before is refused: a reader that
    cannot tell what is imported must not guess."""
    found: list[PickleGlobal] = []
    memo: dict[int, object] = {}
    pushed: list[object] = []  # the values of the latest pushes, while they are plain strings
    unknown = object()
    try:
        for op, arg, pos in pickletools.genops(data):
            name = op.name
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                found.append(PickleGlobal(module, attr, name, pos, member))
                pushed = []
            elif name == "STACK_GLOBAL":
                if len(pushed) < 2 or not all(isinstance(v, str) for v in pushed[-2:]):
                    raise ModelError(
                        f"{member}: a STACK_GLOBAL at byte {pos} imports a name this check cannot read; "
                        "refusing the pickle"
                    )
                found.append(PickleGlobal(str(pushed[-2]), str(pushed[-1]), name, pos, member))
                pushed = []
            elif name in _STRING_OPS:
                pushed.append(arg)
            elif name in _MEMO_OPS:
                index = len(memo) if name == "MEMOIZE" else int(arg)
                memo[index] = pushed[-1] if pushed else unknown
            elif name in _GET_OPS:
                pushed.append(memo.get(int(arg), unknown))
            elif name != "FRAME":  # FRAME only delimits bytes; everything else consumes or pushes non-strings
                pushed = []
    except ModelError:
        raise
    except Exception as exc:  # a truncated or malformed pickle: nothing to trust
        raise ModelError(f"{member}: not a readable pickle ({type(exc).__name__}: {exc})") from exc
    return found


def is_allowed(item: PickleGlobal) -> bool:
    """In the allow-list, a torch storage or dtype, or an nn.Module class of an allowed package."""
    if (item.module, item.name) in ALLOWED_GLOBALS:
        return True
    if item.opcode == "INST":  # INST calls the class with arguments from the stack: never needed
        return False
    if item.module == "torch" and (item.name.endswith("Storage") or _is_dtype(item.name)):
        return True
    if item.module.startswith(MODULE_CLASS_PACKAGES[0]) or item.module == MODULE_CLASS_PACKAGES[1]:
        return _is_module_class(item.module, item.name)
    return False


def _is_dtype(name: str) -> bool:
    import torch

    return isinstance(getattr(torch, name, None), torch.dtype)


def _is_module_class(module: str, name: str) -> bool:
    from torch import nn

    loaded = sys.modules.get(module)  # already imported, or refused: resolving must not import
    obj = getattr(loaded, name, None) if loaded is not None and "." not in name else None
    return isinstance(obj, type) and issubclass(obj, nn.Module)


def module_classes(items: list[PickleGlobal]) -> list[type]:
    """The nn.Module classes among allowed globals (for torch's weights-only unpickler)."""
    return [
        getattr(sys.modules[i.module], i.name)
        for i in items
        if i.module in sys.modules and _is_module_class(i.module, i.name)
    ]


def pickles_in(path: Path) -> list[tuple[str, bytes]]:
    """The pickles in a torch checkpoint: the ``.pkl`` entries of its zip archive, or the
    whole file for a legacy (non-zip) one."""
    raw = path.read_bytes()
    if not zipfile.is_zipfile(io.BytesIO(raw)):
        return [(path.name, raw)]
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        return [(n, archive.read(n)) for n in archive.namelist() if n.endswith(".pkl")]


def check_pickle_allow_list(path: Path, where: str) -> list[PickleGlobal]:
    """Refuse ``path`` (naming the first global outside the allow-list) before it is unpickled;
    return the globals it names."""
    entries = pickles_in(path)
    if not entries:
        raise ModelError(f"{where}: {path.name} holds no pickle to check; refusing to load what was not checked")
    found = [g for member, data in entries for g in pickle_globals(data, member)]
    refused = [g for g in found if not is_allowed(g)]
    if refused:
        first = refused[0]
        others = sorted({g.dotted for g in refused[1:]} - {first.dotted})
        raise ModelError(
            f"{where}: the pickle calls {first.dotted} ({first.opcode} at byte {first.position} of {first.member}), "
            "which a PyTorch model does not need; refused before unpickling, with or without the trust flag"
            + (f" (also: {', '.join(others[:5])})" if others else "")
        )
    return found
