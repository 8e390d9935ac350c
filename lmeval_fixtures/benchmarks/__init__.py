"""The suite's benchmark items, shipped in the package so that a plain ``pip install`` runs them:

    lmeval-fixtures run --checkpoint a.safetensors
    pytest -p lmeval_fixtures.plugin --pyargs lmeval_fixtures.benchmarks --checkpoint a.safetensors

The repository's top-level ``benchmarks/`` files import these same functions, so the
two cannot drift apart. Like ``plugin.py`` and ``fixtures.py``, this is the pytest
layer; the item bodies are ``lmeval_fixtures.evaluation.items``.
"""
