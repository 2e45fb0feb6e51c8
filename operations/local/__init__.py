"""Controller-side work: what happens on the machine running pyinfra, not on the servers.

- ``packaging.py`` (selective, reproducible packages), ``manifest.py`` (their manifests and
  the file-level diff), ``gitsource.py`` (exporting one commit), ``controller.py`` (each run's
  packages, deltas, shared files and auth key, built or decided once per run);
- ``app_files.py``: shared files, the rendered ``appconfig.ini`` and the auth key;
- ``passwords.py``: hashing web2py and Unix passwords; ``sudoers.py``: sudo rules;
- ``pages.py``: the maintenance page, notice and allow-list;
- ``dryrun.py`` (what a deploy would change), ``reports.py`` (what it did), ``retrieve.py``
  (bringing backups to the controller).
"""
