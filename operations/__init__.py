"""pyinfra-web2py's own operations, facts and the pure logic behind them.

Deploy files import from here (pyinfra puts the current directory on ``sys.path``, so run
``pyinfra`` from the repository root). Pure functions (validation, hashing, rendering) have no
pyinfra state and are unit-tested directly; operations are tested with pyinfra-testing fixtures.
"""
