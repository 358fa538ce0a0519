"""authbridge benchmarks: ``python -m bench [--quick] [--only SUBSTRING]`` (see bench/README.md).

* ``scenarios/`` - what is measured: the apps, the requests made to them, the baselines;
* ``runners/`` - how: in process, over loopback, throughput, growth, the OAuth callback;
* ``report.py`` - the report's text (one table printer); ``chart.py`` - the targets as SVG;
* ``targets.py`` - the targets and their verdicts; ``__main__.py`` - the command line.
"""
