# -*- coding: utf-8 -*-
# TEST STAND-IN (not web2py): admin access control with web2py's rules:
# - only over HTTPS (or with X-Forwarded-For, i.e. behind a proxy) or from localhost
# - the password is read from parameters_<SERVER_PORT>.py in the web2py root
import os
import time

if request.env.http_x_forwarded_for or request.is_https:
    session.secure()
elif not request.is_local and not DEMO_MODE:
    raise HTTP(200, T('Admin is disabled because insecure channel'))

_config = {}
try:
    _port = int(request.env.server_port or 0)
    with open(os.path.join(request.env.web2py_path, 'parameters_%i.py' % _port)) as _f:
        exec(_f.read(), {}, _config)
    if not _config.get('password'):
        raise HTTP(200, T('admin disabled because no admin password'))
except IOError:
    raise HTTP(200, T('admin disabled because unable to access password file'))


def verify_password(password):
    if DEMO_MODE:
        return True
    if not _config.get('password'):
        return False
    return _config['password'] == CRYPT()(password)[0]


# brute-force protection: private/hosts.deny holds "<ip> <failures> <last time>"
deny_file = os.path.join(request.folder, 'private', 'hosts.deny')
allowed_number_of_attempts = 5
expiration_failed_logins = 3600


def read_hosts_deny():
    hosts = {}
    if os.path.exists(deny_file):
        with open(deny_file) as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and not line.startswith('#'):
                    hosts[fields[0]] = (int(fields[1]), int(fields[2]))
    return hosts


def write_hosts_deny(denied_hosts):
    with open(deny_file, 'w') as f:
        for key, val in denied_hosts.items():
            if time.time() - val[1] < expiration_failed_logins:
                f.write('%s %s %s\n' % (key, val[0], val[1]))


def login_record(success=True):
    """Record a login attempt; return the number of recent failures of this client."""
    denied_hosts = read_hosts_deny()
    val = (0, 0)
    if success and request.client in denied_hosts:
        del denied_hosts[request.client]
    elif not success and not request.is_local:
        val = denied_hosts.get(request.client, (0, 0))
        if time.time() - val[1] < expiration_failed_logins \
                and val[0] >= allowed_number_of_attempts:
            return val[0]  # locked out
        # (web2py also sleeps 2**failures seconds here; the stand-in does not)
        val = (val[0] + 1, int(time.time()))
        denied_hosts[request.client] = val
    write_hosts_deny(denied_hosts)
    return val[0]


t0 = time.time()
if session.authorized:
    if session.last_time and session.last_time < t0 - EXPIRATION:
        session.flash = T('session expired')
        session.authorized = False
    else:
        session.last_time = t0

if not session.authorized and \
        request.controller + '/' + request.function not in ('default/index', 'default/user'):
    _query = request.env.query_string
    _url = request.env.path_info + ('?' + _query if _query else '')
    redirect(URL(request.application, 'default', 'index', vars=dict(send=_url)))
elif session.authorized and request.controller == 'default' and request.function == 'index':
    redirect(URL(request.application, 'default', 'site'))
