"""Every data key, read once: defaults, validators and the typed settings objects deploys use.

- ``defaults.py``: the defaults, read from ``group_data/all.py`` (their only definition);
- ``validators.py``: every check of a value (one line naming the key on failure);
- ``layout.py``: the server's layout (paths, accounts, ports), shared by all settings objects;
- ``install.py``, ``apps.py``, ``maintenance.py``, ``users.py``, ``runs.py``: what each deploy
  reads, checked, as frozen dataclasses;
- ``data_keys.py``: a misspelt key is refused.

Nothing here touches a host or the network: validation checks values only (a git source is
exported where packaging happens, ``operations/local/controller.py``).
"""
