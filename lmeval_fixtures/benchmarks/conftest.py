"""Loads the plugin when these items are collected without ``-p lmeval_fixtures.plugin``
(options then keep their defaults: pass ``-p lmeval_fixtures.plugin`` or use
``lmeval-fixtures run`` to give any)."""

pytest_plugins = ["lmeval_fixtures.plugin"]
