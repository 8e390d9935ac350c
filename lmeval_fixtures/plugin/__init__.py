"""The pytest plugin (``-p lmeval_fixtures.plugin``): its module hooks, named here, live in ``hooks.py``.

pytest registers this module, so the hooks must be its attributes; nothing else is
imported here, and ``hooks`` imports no torch, so loading the plugin stays cheap.
"""

from .hooks import pytest_addhooks, pytest_addoption, pytest_configure, pytest_load_initial_conftests

__all__ = ["pytest_addhooks", "pytest_addoption", "pytest_configure", "pytest_load_initial_conftests"]
