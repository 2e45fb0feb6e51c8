"""Server side of pyinfra-web2py's app deploys: releases, atomic switch, health checks, rollback.

Shipped to servers by pyinfra-web2py and run as root. Standard library only, Python 3.9+
(Debian 11+, Ubuntu 22.04+; bin/test checks it with vermin); the names and records it shares
with the controller come from ``operations/formats.py``. Every step of a deploy that must not be
left half-done runs here, in one process, under one lock (``golive``):

    lock → unpack and verify → link shared data → [notice, then down for maintenance: asked
    for, or to restore data, or to adopt a plain app folder's data] → backup → [data] →
    pre-switch check (migrations, a throwaway uWSGI serving the new release) → hooks → atomic
    switch (rename of a symlink) → chain reload → wait for every worker → health check through
    nginx → on failure: switch back, reload, mark the release bad → [up] → audit line → unlock

A deploy, rollback or restore runs in a detached child (``detach``: its own session, a root-only
run log in APPS_DIR/APP/runs/) that the process pyinfra started only relays: a dead controller
or connection never stops a run halfway.

Layout of one app (APPS_DIR/APP):
    releases/<id>/       code (root-owned, read-only to uWSGI; private/ readable by the web2py
                         group only) + symlinks to shared data and shared files
    shared/<data dir>/   databases uploads sessions errors cache: owned by the web2py user
    shared/files/<path>  the app's shared files (e.g. private/auth.key): kept on the server,
                         root-owned, readable by the web2py group, linked into every release
    shared/private/      the old layout's private/ (before it shipped with releases): kept for
                         releases made then; its files the package lacks were copied to files/
    current              symlink → releases/<id>: what web2py serves (applications/APP → current)
    release.log          "<utc> <release id> <event>" lines: the history rollback follows
    audit.jsonl          one JSON object per deploy, rollback or restore
    lock/                exists while a deploy runs; lock/info.json says who, when, which version
    runs/                the run logs of deploys, rollbacks and restores (root-only; last 20)
"""
