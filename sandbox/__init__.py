"""Throwaway Debian servers (11, 12, 13) on this machine: systemd-nspawn containers on a
host bridge.

Run it as ``bin/sandbox`` (root). See sandbox/README.md.
"""
