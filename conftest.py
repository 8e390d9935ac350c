"""Loads the plugin for runs in this checkout (``pytest benchmarks``, ``pytest tests``).

The package has no ``pytest11`` entry point: installing it changes no other project's
pytest run, so each place that uses the plugin loads it (docs/design.md, "What a run does",
step 0); in this checkout, this file does.
"""

pytest_plugins = ["lmeval_fixtures.plugin"]
