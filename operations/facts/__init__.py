"""Every fact of pyinfra-web2py, grouped by what it describes.

- ``web2py.py``: the installation (source and package markers, admin password, Python);
- ``accounts.py``: login accounts; ``systemd.py``: units;
- ``releases.py``: an app's releases, lock, shared files, audit log, backups, cleanup;
- ``maintenance.py``: an app's maintenance files.

Each reports only what idempotency needs: never a secret.
"""
