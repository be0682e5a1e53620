"""``regload compare BASE NEW``: two runs' results side by side, row by row, and the limits a
release pipeline sets on how much worse the new one may be (``--max-regression``).

- ``runs``: a run's files read into rows of metrics (Locust's ``--json-file`` output, and
  regload's capacity, registry and storms files beside it).
- ``limits``: ``ROW:METRIC:+PCT`` parsed and judged.
- ``report``: the comparison as text, Markdown (a CI comment) or JSON.
"""
