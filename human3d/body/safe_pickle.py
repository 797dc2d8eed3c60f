"""A restricted unpickler for the official SMPL / SMPL-H / SMPL-X / MANO ``.pkl`` files.

Those files are Python-2 pickles of a dict holding numpy arrays, ``scipy.sparse`` matrices (``J_regressor``) and
``chumpy`` arrays (``shapedirs`` and sometimes ``v_template`` / ``posedirs``). A plain ``pickle.load`` would run any
callable the file names; this loader resolves only an allow-list of globals:

* numpy array / dtype / scalar reconstruction (``numpy[._]core.multiarray._reconstruct``, ``numpy.ndarray``,
  ``numpy.dtype``, ``scalar``, ``_frombuffer``) and ``_codecs.encode(str, "latin1")`` (how bytes are pickled
  at protocols < 3);
* ``scipy.sparse`` csc / csr / coo matrices and arrays: replaced by a stand-in that records the pickled state and
  is rebuilt with the public ``scipy.sparse`` constructors afterwards;
* any class of the ``chumpy`` package: replaced by a stand-in that records the pickled ``__dict__`` (chumpy's
  ``__getstate__``); plain ``chumpy.ch.Ch`` keeps its array in ``state["x"]``. A few derived nodes that occur in
  such files (``reordering.Select / Reshape / transpose / Concatenate``, ``ch_ops.add / subtract / multiply /
  divide / negative``, ``ch.MatVecMult``) are evaluated with numpy. chumpy itself is never imported;
* harmless builtins (``set``, ``frozenset``, ``complex``, ``slice``, ``bytearray``, ``object`` only as the base
  of ``copy_reg._reconstructor``) and ``collections.OrderedDict``.

Every other global (``os.system``, ``builtins.eval``, ``subprocess.Popen`` ...) raises :class:`UnsafePickleError`
naming the file and the global *before* anything is called. Python-2 ``str`` payloads are decoded as latin-1.
"""

from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from human3d.errors import ModelFileError, UnsafePickleError

__all__ = ["load_pickle", "loads_pickle", "ChumpyStandIn", "SparseStandIn", "UnsafePickleError"]

_reconstruct = np.ndarray(0).__reduce__()[0]  # numpy's array reconstructor, whatever module it lives in
_scalar = np.float64(0).__reduce__()[0]


def _frombuffer(buf, dtype, shape, order):
    arr = np.frombuffer(buf, dtype=dtype)
    if order == "F":
        return arr.reshape(shape, order="F")
    return arr.reshape(shape)


def _codecs_encode(obj, encoding="utf-8", errors="strict"):
    if not isinstance(obj, str) or encoding.replace("-", "").lower() != "latin1":
        raise UnsafePickleError(f"_codecs.encode is only allowed on a str with latin1, got {type(obj).__name__}/{encoding}")
    return obj.encode("latin1", errors)


_NUMPY_MODULES = {
    "numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric",
}  # fmt: skip
_NUMPY_NAMES = {
    "ndarray": np.ndarray,
    "dtype": np.dtype,
    "_reconstruct": _reconstruct,
    "scalar": _scalar,
    "_frombuffer": _frombuffer,
}
_BUILTINS = {"set": set, "frozenset": frozenset, "complex": complex, "slice": slice, "bytearray": bytearray}
_SPARSE_FORMATS = {"csc", "csr", "coo"}


class ChumpyStandIn:
    """Stands in for a pickled chumpy object: keeps its state dict; :meth:`to_numpy` evaluates it."""

    _chumpy_name = "chumpy.ch.Ch"

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise ModelFileError(f"{self._chumpy_name}: unexpected pickled state of type {type(state).__name__}")
        self.state = state

    def __reduce__(self):  # never re-pickle as something else
        raise TypeError("ChumpyStandIn objects cannot be pickled; convert with to_numpy()")

    def _term(self, name):
        if name not in getattr(self, "state", {}):
            raise ModelFileError(f"{self._chumpy_name}: pickled state has no '{name}'")
        return _to_numpy(self.state[name])

    def to_numpy(self) -> np.ndarray:
        cls = self._chumpy_name.rsplit(".", 1)[-1]
        s = getattr(self, "state", {})
        if cls == "Ch":
            return np.asarray(self._term("x"))
        if cls == "Select":
            out = self._term("a").ravel()[np.asarray(s["idxs"]).ravel()]
            return out.reshape(s["preferred_shape"]) if "preferred_shape" in s else out
        if cls == "Reshape":
            return self._term("a").reshape(s["newshape"])
        if cls == "transpose":
            return np.transpose(self._term("a"), s.get("axes"))
        if cls == "Concatenate":
            terms = s.get("dterms") or sorted((k for k in s if k[:1] == "m" and k[1:].isdigit()), key=lambda k: int(k[1:]))
            return np.concatenate([self._term(t) for t in terms], axis=s.get("axis", 0))
        if cls in ("add", "subtract", "multiply"):
            return getattr(np, cls)(self._term("a"), self._term("b"))
        if cls == "divide":
            return self._term("x1") / self._term("x2")
        if cls == "negative":
            return -self._term("x")
        if cls == "MatVecMult":
            mtx = s["mtx"]
            vec = self._term("vec").ravel()
            return np.asarray(mtx.dot(vec) if hasattr(mtx, "dot") else np.asarray(mtx) @ vec).ravel()
        raise ModelFileError(
            f"chumpy node '{self._chumpy_name}' cannot be evaluated without chumpy; convert the file to .npz "
            "(e.g. with smplx's tools/clean_ch.py) and load that instead"
        )

    def __array__(self, dtype=None, copy=None):
        arr = self.to_numpy()
        return arr.astype(dtype) if dtype is not None else arr


class SparseStandIn:
    """Stands in for a pickled ``scipy.sparse`` matrix; :meth:`to_scipy` rebuilds it from its arrays."""

    _format = "csc"

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise ModelFileError(f"scipy.sparse {self._format}: unexpected pickled state {type(state).__name__}")
        self.state = state

    def to_scipy(self):
        import scipy.sparse as sp

        s = self.state
        shape = tuple(int(n) for n in (s.get("_shape") or s.get("shape")))
        data = np.asarray(s["data"])
        if self._format == "coo":
            if "coords" in s:
                row, col = (np.asarray(c) for c in s["coords"])
            else:
                row, col = np.asarray(s["row"]), np.asarray(s["col"])
            return sp.coo_matrix((data, (row, col)), shape=shape)
        ctor = sp.csc_matrix if self._format == "csc" else sp.csr_matrix
        return ctor((data, np.asarray(s["indices"]), np.asarray(s["indptr"])), shape=shape)


_STANDINS: dict[tuple[str, str], type] = {}


def _standin(base: type, module: str, name: str, **attrs) -> type:
    key = (module, name)
    if key not in _STANDINS:
        _STANDINS[key] = type(f"{name}StandIn", (base,), {"__module__": __name__, **attrs})
    return _STANDINS[key]


def _reconstructor(cls, base, state):
    """Safe ``copy_reg._reconstructor``: only for our stand-ins over ``object``."""
    if not (isinstance(cls, type) and issubclass(cls, (ChumpyStandIn, SparseStandIn)) and base is object):
        raise UnsafePickleError(f"copy_reg._reconstructor refused for {cls!r} over {base!r}")
    return object.__new__(cls)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str):
        super().__init__(file, encoding="latin1", fix_imports=True)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if module in _NUMPY_MODULES and name in _NUMPY_NAMES:
            return _NUMPY_NAMES[name]
        if module == "_codecs" and name == "encode":
            return _codecs_encode
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            return _reconstructor
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return _BUILTINS[name]
        if module in ("builtins", "__builtin__") and name == "object":
            return object  # only usable as the base of _reconstructor (calling object() does nothing)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module.startswith("scipy.sparse"):
            fmt = name.split("_")[0]
            if fmt in _SPARSE_FORMATS and name in (f"{fmt}_matrix", f"{fmt}_array"):
                return _standin(SparseStandIn, module, name, _format=fmt)
        if module == "chumpy" or module.startswith("chumpy."):
            if name.isidentifier():
                return _standin(ChumpyStandIn, module, name, _chumpy_name=f"{module}.{name}")
        raise UnsafePickleError(
            f"{self.source}: refused to load global '{module}.{name}' (a model pickle may only contain numpy, "
            "scipy.sparse and chumpy arrays); the file may be malicious"
        )

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.source}: persistent ids are not allowed in a model pickle")


def _to_numpy(obj):
    if isinstance(obj, ChumpyStandIn):
        return obj.to_numpy()
    if isinstance(obj, SparseStandIn):
        return obj.to_scipy()
    return obj


def _convert(obj, source: str, key: str = ""):
    """Replace stand-ins by ndarrays / scipy matrices, recursively in dicts, lists and tuples."""
    if isinstance(obj, (ChumpyStandIn, SparseStandIn)):
        try:
            return _to_numpy(obj)
        except ModelFileError:
            return obj  # left as is; raises a clear error if this entry is ever used as an array
        except Exception as exc:  # malformed state
            raise ModelFileError(f"{source}: cannot rebuild entry '{key}' ({type(exc).__name__}: {exc})") from exc
    if isinstance(obj, dict):
        return type(obj)((k, _convert(v, source, f"{key}.{k}" if key else str(k))) for k, v in obj.items())
    if isinstance(obj, list):
        return [_convert(v, source, f"{key}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        return tuple(_convert(v, source, f"{key}[{i}]") for i, v in enumerate(obj))
    return obj


def loads_pickle(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` with the allow-list above; chumpy / sparse stand-ins converted. See :func:`load_pickle`."""
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), source).load()
    except UnsafePickleError as exc:
        if source not in str(exc):
            raise UnsafePickleError(f"{source}: {exc}") from None
        raise
    except ModelFileError:
        raise
    except Exception as exc:  # truncated / corrupt / not a pickle
        raise ModelFileError(f"{source}: not a readable model pickle ({type(exc).__name__}: {exc})") from None
    return _convert(obj, source)


def load_pickle(path: str | Path) -> Any:
    """Safely load a model ``.pkl`` file (Python 2 or 3 pickle).

    Returns the unpickled object with chumpy arrays as ``np.ndarray`` and sparse matrices as ``scipy.sparse``
    matrices. Raises :class:`UnsafePickleError` for any global outside the allow-list (nothing is executed) and
    :class:`ModelFileError` for a missing or corrupt file.
    """
    p = Path(path).expanduser()
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{p}: file does not exist") from None
    except OSError as exc:
        raise ModelFileError(f"{p}: cannot read ({exc})") from None
    return loads_pickle(data, str(p))
