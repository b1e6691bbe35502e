"""Load benchmarks, run from the repository root.

- `bench/run` (`make bench`): the one table of the speed goals, Fantasize against bare Flask with every ratio
  (bench/harness.py, with bench/bare.py as the baseline app and bench/wrk/ as wrk's scripts).
- `bench/run --cluster`: the cached product and the uncached list through nginx, one instance against two
  (bench/cluster.py, on deploy/local_cluster.py), with each instance's and nginx's CPU per request.
- `python -m bench.orders`: order placement from a Python client, spread and on one hot product (row contention).
- `python -m bench.cache`: the page cache's hit/miss figures and the cost of an invalidation.
"""
