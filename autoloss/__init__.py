"""The search and the user's surface: configuration, evolution, proxy evaluation, export, CLI.

``autoloss.search(config) -> SearchResult`` runs a search (see :mod:`autoloss.search_driver`); the names are
imported on first use, so ``import autoloss`` stays light.
"""

import importlib

_LAZY = {
    "search": "autoloss.search_driver",
    "SearchConfig": "autoloss.search_config",
    "load_config": "autoloss.search_config",
    "SearchResult": "autoloss.search_result",
    "FoundLoss": "autoloss.search_result",
    "CandidateRecord": "autoloss.records",
    "SearchState": "autoloss.search_state",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'autoloss' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
