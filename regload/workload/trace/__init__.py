"""Registry traces in the IBM format (Anwar et al., FAST '18): read, summarise, synthesise, and
plan their replay. Protocol core: nothing here imports Locust or gevent."""
