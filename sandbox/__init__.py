"""Throwaway Debian 12 servers on this machine: systemd-nspawn containers on a host bridge.

Run it as ``bin/sandbox`` (root). See sandbox/README.md.
"""
