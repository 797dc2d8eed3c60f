"""The restricted unpickler for SMPL model files: what it admits, what it refuses, and that refusing runs nothing."""

from __future__ import annotations

import os
import pickle
import pickletools
import subprocess
import sys
import types

import numpy as np
import pytest
import scipy.sparse as sp

from human3d.body.safe_pickle import ChumpyStandIn, load_pickle, loads_pickle
from human3d.errors import ModelFileError, UnsafePickleError


# ---- malicious pickles ------------------------------------------------------------------------------------------------
class _Evil:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_os_system_is_refused_and_nothing_runs(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    payload = {"v_template": np.zeros((3, 3)), "evil": _Evil(os.system, (f"touch {marker}",))}
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(UnsafePickleError) as err:
        load_pickle(path)
    msg = str(err.value)
    assert str(path) in msg and "system" in msg  # names the file and the refused global (posix.system)
    assert not marker.exists()


@pytest.mark.parametrize(
    "func, args",
    [(eval, ("__import__('os').getcwd()",)), (subprocess.Popen, (["true"],)), (getattr, ("abc", "upper")), (__import__, ("os",))],
)
def test_other_dangerous_globals_are_refused(func, args):
    data = pickle.dumps([np.arange(3), _Evil(func, args)], protocol=2)
    with pytest.raises(UnsafePickleError, match=func.__name__):
        loads_pickle(data, "model.pkl")


def test_reconstructor_cannot_build_arbitrary_classes():
    # copy_reg._reconstructor(set, object, None) is allowed by name but must refuse anything but our stand-ins
    data = b"ccopy_reg\n_reconstructor\n(c__builtin__\nset\nc__builtin__\nobject\nNtR."
    with pytest.raises(UnsafePickleError, match="_reconstructor"):
        loads_pickle(data, "x.pkl")


def test_codecs_encode_only_latin1():
    bad = b"c_codecs\nencode\n(Vabc\nVrot13\ntR."
    with pytest.raises(UnsafePickleError):
        loads_pickle(bad, "x.pkl")
    ok = b"c_codecs\nencode\n(Vabc\nVlatin1\ntR."
    assert loads_pickle(ok, "x.pkl") == b"abc"


# ---- what is admitted -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_numpy_and_builtins_round_trip(protocol):
    obj = {
        "a": np.arange(12, dtype=np.float32).reshape(3, 4),
        "f": np.asfortranarray(np.random.default_rng(0).normal(size=(5, 3))),
        "i": np.array([1, 2, 3], dtype=np.uint32),
        "s": np.float64(2.5),
        "str": "lbs",
        "set": {1, 2},
        "nested": [(1, 2.0), {"k": np.ones(2)}],
    }
    out = loads_pickle(pickle.dumps(obj, protocol=protocol))
    for k in ("a", "f", "i"):
        np.testing.assert_array_equal(out[k], obj[k])
        assert out[k].dtype == obj[k].dtype
    assert out["s"] == 2.5 and out["str"] == "lbs" and out["set"] == {1, 2}
    np.testing.assert_array_equal(out["nested"][1]["k"], np.ones(2))


@pytest.mark.parametrize("fmt", ["csc", "csr", "coo"])
def test_scipy_sparse(fmt):
    dense = np.zeros((4, 7))
    dense[[0, 1, 3, 3], [2, 6, 0, 5]] = [0.5, 1.0, 0.25, 2.0]
    mat = getattr(sp, f"{fmt}_matrix")(dense)
    out = loads_pickle(pickle.dumps({"J_regressor": mat}, protocol=2))["J_regressor"]
    assert sp.issparse(out)
    np.testing.assert_array_equal(out.toarray(), dense)


def _py2_array_pickle(arr: np.ndarray) -> bytes:
    """A pickle as Python 2 / numpy 1.x wrote it (protocol 2, array bytes as a py2 ``str``: needs latin1)."""
    assert arr.dtype == np.float64 and arr.ndim == 2
    raw = arr.tobytes()
    assert len(raw) < 256
    shape = b"K%cK%c\x86" % (arr.shape[0], arr.shape[1])
    dtype = b"cnumpy\ndtype\nU\x02f8K\x00K\x01\x87R(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
        + b"(K\x01" + shape + dtype + b"\x89U" + bytes([len(raw)]) + raw + b"tb"
    )  # fmt: skip
    return b"\x80\x02}U\x09shapedirs" + array + b"s."  # {"shapedirs": array}


def test_python2_pickle_needs_latin1_and_loads():
    arr = np.array([[-1.5, 2.25, 3.0], [1e-3, -7.0, 0.1]])  # bytes >= 0x80 in the payload
    data = _py2_array_pickle(arr)
    pickletools.dis(data, out=open(os.devnull, "w"))  # a well-formed pickle
    assert any(b >= 0x80 for b in arr.tobytes())
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(data)  # what a plain py3 load does without latin1
    out = loads_pickle(data)
    np.testing.assert_array_equal(out["shapedirs"], arr)


# ---- chumpy -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [0, 2])
def test_chumpy_arrays_load_as_ndarrays_without_chumpy(monkeypatch, protocol, install_fake_chumpy):
    base = np.arange(24, dtype=np.float64).reshape(8, 3)
    with monkeypatch.context() as m:
        ch = install_fake_chumpy(m)
        a = ch["Ch"](base)
        obj = {
            "shapedirs": a,
            "sel": ch["Select"](a=a, idxs=np.array([0, 5, 7]), preferred_shape=(3,)),
            "resh": ch["Reshape"](a=a, newshape=(3, 8)),
            "sum": ch["add"](a=a, b=ch["Ch"](np.ones((8, 3)))),
            "unsupported": ch["sin"](x=a),
            "plain": np.eye(2),
        }
        data = pickle.dumps(obj, protocol=protocol)
    assert "chumpy.ch" not in sys.modules or not hasattr(sys.modules["chumpy.ch"], "Ch")
    assert b"chumpy.ch" in data
    out = loads_pickle(data, "SMPL_NEUTRAL.pkl")
    assert type(out["shapedirs"]) is np.ndarray
    np.testing.assert_array_equal(out["shapedirs"], base)
    np.testing.assert_array_equal(out["sel"], base.ravel()[[0, 5, 7]])
    np.testing.assert_array_equal(out["resh"], base.reshape(3, 8))
    np.testing.assert_array_equal(out["sum"], base + 1)
    np.testing.assert_array_equal(out["plain"], np.eye(2))
    # a node we cannot evaluate loads (unused entries must not break a model) but refuses to become an array
    assert isinstance(out["unsupported"], ChumpyStandIn)
    with pytest.raises(ModelFileError, match="chumpy.ch_ops.sin"):
        np.asarray(out["unsupported"])


# ---- broken files -----------------------------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_pickle(tmp_path / "nope.pkl")


def test_corrupt_and_truncated(tmp_path):
    rng = np.random.default_rng(1)
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"\x00\xff" + rng.bytes(4096))
    with pytest.raises(ModelFileError, match="junk.pkl"):
        load_pickle(junk)
    trunc = tmp_path / "trunc.pkl"
    trunc.write_bytes(pickle.dumps({"a": np.arange(100.0)}, protocol=2)[:-40])
    with pytest.raises(ModelFileError, match="trunc.pkl"):
        load_pickle(trunc)
