"""Makes the plugin available in a source checkout that was not pip-installed.

When the package is installed, its ``pytest11`` entry point (named after the
module, ``lmeval_fixtures.plugin``) has already registered the plugin, and
pytest skips a second registration of the same name.
"""

pytest_plugins = ["lmeval_fixtures.plugin"]
