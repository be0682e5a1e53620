"""The documentation site (mkdocs.yml, docs/): it builds with --strict, every page is in the nav,
nothing is fetched from the network (no web fonts), and the README's links into it resolve."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """A warning fails the build: a page left out of the nav, a link to a page or an anchor that
    does not exist (mkdocs.yml's validation section), a bad config value."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner, not a build warning
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert (tmp_path / "site" / "index.html").is_file(), output
    assert (tmp_path / "site" / "architecture" / "index.html").is_file(), output


def _nav_pages(nav: Any) -> set[str]:
    """The Markdown files a mkdocs nav names (entries are 'Title: file.md', 'file.md' or sections)."""
    if isinstance(nav, str):
        return {nav} if nav.endswith(".md") else set()
    if isinstance(nav, list):
        return set().union(*(_nav_pages(entry) for entry in nav)) if nav else set()
    if isinstance(nav, dict):
        return set().union(*(_nav_pages(value) for value in nav.values())) if nav else set()
    return set()


def test_every_page_is_in_the_nav() -> None:
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = _nav_pages(config["nav"])
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages - nav == set(), "pages under docs/ missing from mkdocs.yml's nav"
    assert nav - pages == set(), "nav entries with no page under docs/"


def test_the_site_fetches_no_web_fonts() -> None:
    """Material links Google Fonts unless told not to: the build and the pages stay offline."""
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["theme"]["font"] is False


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readme_links_resolve() -> None:
    """The README is read on GitHub, outside the site: its relative links must name files that
    exist, and their anchors headings of those files."""
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    relative = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert any(link.startswith("docs/") for link in relative)
    broken = []
    for link in relative:
        path, _, anchor = link.partition("#")
        target = ROOT / path if path else ROOT / "README.md"
        if not target.exists():
            broken.append(link)
        elif anchor and target.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", target.read_text(), re.M)
            if anchor not in {_github_anchor(h) for h in headings}:
                broken.append(link)
    assert broken == []


def test_the_options_reference_is_written_from_the_option_groups():
    """docs/reference/options.md is ``python -m regload.cli.reference``'s output: an option added,
    renamed or documented otherwise in the code fails here until the page is written again."""
    from regload.cli.reference import markdown

    page = (ROOT / "docs" / "reference" / "options.md").read_text()
    assert page == markdown(), "run: python -m regload.cli.reference > docs/reference/options.md"
