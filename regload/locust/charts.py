"""The web UI's chart pages, drawn with Plotly: the figures are built in Python
(``plotly.graph_objects``) and served as JSON; the page polls it and draws it with the plotly.js
that ships in the plotly package, served from the web UI itself (load-test hosts are often
offline: no script from elsewhere)."""

from __future__ import annotations

import html
from functools import cache

SCRIPT_PATH = "/regload/plotly.min.js"
REFRESH_MS = 2000


@cache
def plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def page(title: str, figure_url: str) -> str:
    """A page that draws the figure at ``figure_url`` and draws it again every two seconds."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<link rel="icon" href="data:,">
<script src="{SCRIPT_PATH}"></script>
<style>body{{font-family:sans-serif;margin:1em}}#chart{{width:100%;height:80vh}}</style></head>
<body><div id="chart"></div>
<script>
async function draw() {{
  const figure = await (await fetch({figure_url!r})).json();
  Plotly.react("chart", figure.data, figure.layout, {{responsive: true}});
}}
draw(); setInterval(draw, {REFRESH_MS});
</script></body></html>
"""
