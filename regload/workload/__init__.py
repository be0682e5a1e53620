"""What describes or schedules a load, without Locust: arrival rates and the open model's
scheduler, the pull pool (its images, their layout and seeding), freshly pushed images, nodes,
platforms, layer sizes, popularity, and registry traces (records, plans, synthesis, replay).

It may use gevent (the scheduler and the set-up run in greenlets) but never imports Locust
(``tests/test_layering.py``): the Locust front end (``regload.locust``) wires it to users,
listeners and reports.
"""
