"""The capacity search, apart from Locust: the steps' measurements and verdicts (``steps``),
what limited a rate (``limits``, also used by every open-model run that dropped arrivals), and
the search itself (``search``: doubling, bisection, confirmation)."""
