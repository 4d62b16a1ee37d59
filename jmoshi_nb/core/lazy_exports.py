"""Package attributes imported on first use (PEP 562), so importing a package stays light."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``exports`` maps each name to its submodule.

    The first access imports the submodule and caches the value in the package's namespace. A name
    that is the submodule's own last part and not an attribute of it (``"bench": "research.bench"``)
    is the submodule itself; otherwise it is the submodule's attribute (``"turn_taking"``).
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        target = importlib.import_module(f".{module}", package)
        if hasattr(target, name):
            value = getattr(target, name)
        elif module.rpartition(".")[2] == name:
            value = target
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
