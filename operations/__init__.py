"""pyinfra-web2py's own operations, facts and the controller-side logic behind them.

Deploy files import from here (pyinfra puts the current directory on ``sys.path``, so run
``pyinfra`` from the repository root). The operation modules are named for what they manage
(``web2py``, ``tls``, ``accounts``, ``maintenance``, ``releases``, ``backups``); the data they
act on is read and checked once in ``settings/``, facts live in ``facts/``, work done on the
controller (packaging, hashing, reports) in ``local/``, and what both sides share in
``formats.py``. Pure functions are unit-tested directly; operations and facts with
pyinfra-testing fixtures (``tests/fixtures/``).
"""
