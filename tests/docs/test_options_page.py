"""The documentation stays true: docs/options.md is what scripts/options_page.py writes from the
option table, and every relative link in README.md and docs/*.md leads to a file (and heading) that exists."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from lmeval_fixtures.evaluation.options import OPTIONS, Option

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "options_page.py"
PAGE = ROOT / "docs" / "options.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("options_page", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def options_page() -> ModuleType:
    return load_script()


def test_options_page_is_current(options_page: ModuleType) -> None:
    assert PAGE.read_text(encoding="utf-8") == options_page.render(), (
        "docs/options.md is stale: regenerate it with `python scripts/options_page.py`")


def test_check_fails_on_a_stale_page(options_page: ModuleType, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "options.md"
    current = options_page.render()
    stale.write_text(current.replace("| `--seed N` |", "| `--seed S` |"), encoding="utf-8")
    assert stale.read_text(encoding="utf-8") != current
    assert options_page.main(["--check", "--page", str(stale)]) == 1
    assert "stale" in capsys.readouterr().err
    assert options_page.main(["--check", "--page", str(tmp_path / "missing.md")]) == 1


def test_check_passes_on_the_page_it_writes(options_page: ModuleType, tmp_path: Path) -> None:
    page = tmp_path / "options.md"
    assert options_page.main(["--page", str(page)]) == 0
    assert options_page.main(["--check", "--page", str(page)]) == 0


def test_a_new_option_makes_the_page_stale(options_page: ModuleType) -> None:
    extra = Option("--fake-knob", "a knob no one has | with a pipe and <tags>", default=3, type=int, metavar="N")
    page = options_page.render(options=(*OPTIONS, extra))
    assert page != PAGE.read_text(encoding="utf-8")
    assert "| `--fake-knob N` | `3` | a knob no one has \\| with a pipe and &lt;tags&gt;. |" in page


def test_every_option_and_ini_key_is_on_the_page(options_page: ModuleType) -> None:
    page = PAGE.read_text(encoding="utf-8")
    for option in OPTIONS:
        assert f"`{option.flag}" in page, option.flag
    for name, *_ in options_page.ini_keys():
        assert f"`{name}`" in page, name
    for command in ("run", "merge", "compare", "export-hf", "history", "watch", "fetch-data"):
        assert f"### `{command}`" in page, command


def test_a_link_to_an_option_that_is_gone_is_refused(options_page: ModuleType) -> None:
    with pytest.raises(SystemExit, match="--no-such-option"):
        options_page.render(more={"--no-such-option": "scale.md"})


def test_the_script_imports_no_torch() -> None:
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('options_page', {str(SCRIPT)!r})\n"
            "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
            "module.render()\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# -- links -----------------------------------------------------------------------------------

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose(text: str) -> str:
    """Markdown without fenced code blocks and code spans, where links are not links."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def anchors(text: str) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces as hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", text), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    problems = []
    for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            problems.append(f"{page.name}: {target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text(encoding="utf-8")):
            problems.append(f"{page.name}: {target}: no heading #{anchor} in {linked.name}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_link_check_catches_broken_links(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## A `--flag NAME=X` section\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n[ok](other.md) [ok](other.md#a---flag-namex-section) [ok](#page)\n"
                    "[gone](missing.md) [no heading](other.md#nothing-here) [web](https://example.com)\n"
                    "`[in code](missing-too.md)`\n\n```\n[in a block](missing-three.md)\n```\n", encoding="utf-8")
    assert broken_links(page) == ["page.md: missing.md: no such file",
                                  "page.md: other.md#nothing-here: no heading #nothing-here in other.md"]
