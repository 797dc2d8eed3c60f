"""Fixtures of the body-model tests."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest


def _fake_chumpy(monkeypatch):
    """Install stand-in ``chumpy`` modules whose classes pickle exactly like chumpy's (``__getstate__``)."""
    mods = {n: types.ModuleType(n) for n in ("chumpy", "chumpy.ch", "chumpy.reordering", "chumpy.ch_ops")}

    class Ch:
        dterms = ("x",)

        def __init__(self, x=None, **terms):
            if x is not None:
                self.x = x if isinstance(x, Ch) else np.asarray(x, np.float64)
            for k, v in terms.items():
                setattr(self, k, v)
            self._dirty_vars, self._itr, self._depends_on_deps = set(), None, {}
            self._make_dense, self._make_sparse = False, False
            self._parents, self._cache = {}, {"r": None, "drs": {}}

        def __getstate__(self):
            state = dict(self.__dict__)
            del state["_parents"], state["_cache"]
            return state

    def sub(module, name):
        cls = type(name, (Ch,), {})
        cls.__module__, cls.__qualname__ = module, name
        setattr(mods[module], name, cls)
        return cls

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    mods["chumpy.ch"].Ch = Ch
    classes = {
        "Ch": Ch,
        "Select": sub("chumpy.reordering", "Select"),
        "Reshape": sub("chumpy.reordering", "Reshape"),
        "add": sub("chumpy.ch_ops", "add"),
        "sin": sub("chumpy.ch_ops", "sin"),
    }
    for n, m in mods.items():
        monkeypatch.setitem(sys.modules, n, m)
    return classes


@pytest.fixture()
def install_fake_chumpy():
    """``install_fake_chumpy(monkeypatch) -> {name: class}``: stand-in chumpy modules (see ``_fake_chumpy``)."""
    return _fake_chumpy
