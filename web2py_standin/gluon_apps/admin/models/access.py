# TEST DISTRIBUTION (pyinfra-web2py): admin access control, the stand-in admin's ported to gluon,
# with the rules of web2py 2.26.1's admin/models/access.py:
# - admin only over HTTPS, from global_settings.trusted_lan_prefix, or from a local client;
# - the password is parameters_<SERVER_PORT>.py in the web2py root (443 behind nginx on HTTPS);
# - 5 failed logins lock a client out for an hour (private/hosts.deny). web2py also sleeps
#   2**failures seconds on each failure; this app does not (tests would take minutes).
# HTTP bodies are str(T(...)): web2py's admin passes T(...) itself, a lazyT that gluon hands to
# the WSGI server as an iterable of 1-character str, which WSGI (bytes only) does not allow.
# ruff: noqa: F821
import os
import time

from gluon.admin import apath
from gluon.fileutils import read_file
from gluon.restricted import restricted
from gluon.utils import web2py_uuid
from pydal.contrib import portalocker

if request.is_https:
    session.secure()
elif request.env.trusted_lan_prefix and request.client.startswith(request.env.trusted_lan_prefix):
    request.is_local = True
elif not request.is_local and not DEMO_MODE:
    raise HTTP(200, str(T("Admin is disabled because insecure channel")))

_config = {}
try:
    _port = int(request.env.server_port or 0)
    # web2py's way: the file is Python, run restricted (it is written by web2py.py -a, or by
    # pyinfra-web2py's deploy, with one line password="<CRYPT hash>")
    restricted(read_file(apath(f"../parameters_{_port}.py", request)), _config)
except OSError:
    raise HTTP(200, str(T("admin disabled because unable to access password file"))) from None
if not _config.get("password"):
    raise HTTP(200, str(T("admin disabled because no admin password")))


def verify_password(password):
    if DEMO_MODE:
        return True
    # CRYPT reads the algorithm, cost and salt back from the stored "pbkdf2(...)$salt$hash"
    ok = _config["password"] == CRYPT()(password)[0]
    if ok:
        session.hmac_key = web2py_uuid()
    return ok


deny_file = os.path.join(request.folder, "private", "hosts.deny")
allowed_number_of_attempts = 5
expiration_failed_logins = 3600


def read_hosts_deny():
    """{client: (failures, time of the last one)}; lines are "<ip> <failures> <time>"."""
    hosts = {}
    if os.path.exists(deny_file):
        with open(deny_file) as f:
            portalocker.lock(f, portalocker.LOCK_SH)
            for line in f:
                fields = line.split()
                if len(fields) > 2 and not line.startswith("#"):
                    hosts[fields[0]] = (int(fields[1]), int(fields[2]))
            portalocker.unlock(f)
    return hosts


def write_hosts_deny(denied_hosts):
    with open(deny_file, "w") as f:
        portalocker.lock(f, portalocker.LOCK_EX)
        for key, val in denied_hosts.items():
            if time.time() - val[1] < expiration_failed_logins:
                f.write(f"{key} {val[0]} {val[1]}\n")
        portalocker.unlock(f)


def login_record(success=True):
    """Record a login attempt; return the number of recent failures of this client."""
    denied_hosts = read_hosts_deny()
    val = (0, 0)
    if success and request.client in denied_hosts:
        del denied_hosts[request.client]
    elif not success:
        val = denied_hosts.get(request.client, (0, 0))
        if time.time() - val[1] < expiration_failed_logins and val[0] >= allowed_number_of_attempts:
            return val[0]  # locked out
        val = (val[0] + 1, int(time.time()))
        denied_hosts[request.client] = val
    write_hosts_deny(denied_hosts)
    return val[0]


def failed_login_count():
    return read_hosts_deny().get(request.client, (0, 0))[0]


t0 = time.time()
if DEMO_MODE:
    session.authorized = True
    session.forget()
if session.authorized:
    if session.last_time and session.last_time < t0 - EXPIRATION:
        session.flash = T("session expired")
        session.authorized = False
    else:
        session.last_time = t0

if not session.authorized and request.controller + "/" + request.function != "default/index":
    _query = request.env.query_string
    _url = request.env.path_info + ("?" + _query if _query else "")
    redirect(URL(request.application, "default", "index", vars=dict(send=_url)))
elif session.authorized and request.controller == "default" and request.function == "index":
    redirect(URL(request.application, "default", "site"))
