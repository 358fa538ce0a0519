"""How it is measured: one runner per table of the report.

* ``inprocess`` - ASGI apps called directly, in interleaved rounds (table [1]);
* ``loopback`` - uvicorn on 127.0.0.1 under a bounded keep-alive load (table [2]);
* ``throughput`` and ``email_codes`` - operations/s and the event loop during a sign-in storm
  (table [3]);
* ``growth`` - the revocation set and cleanup with large tables (table [4]);
* ``oauth`` - the OAuth callback's own work (table [4b]).

Runners return results; ``bench/report.py`` prints them.
"""
