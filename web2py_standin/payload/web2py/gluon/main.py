"""TEST STAND-IN (not web2py): gluon.main.wsgibase and save_password.

URL handling follows web2py without routes:
  /<app>/static/[_<x.y.z>/]<file>   static file (400 if it escapes static/, 404 if missing)
  /<app>[/<controller>[/<function>[.<ext>][/<args>...]]]
  "/" uses the default application 'init' (or routes.py default_application);
  a missing default app redirects (303) to /welcome/default/index.
"""

import email.parser
import email.policy
import hashlib
import io
import ipaddress
import json
import os
import pickle
import re
import socket
import sys
import traceback
import uuid
from email.utils import formatdate
from urllib.parse import parse_qsl, unquote

from gluon.compileapp import (build_environment, error_message, run_controller_in,
                              run_models_in, run_view_in)
from gluon.contenttype import contenttype
from gluon.custom_import import custom_import_install
from gluon.dal import BaseAdapter
from gluon.globals import Request, Response, Session, current
from gluon.html import URL
from gluon.http import HTTP, redirect
from gluon.storage import List, Storage
from gluon.validators import CRYPT

__all__ = ['wsgibase', 'save_password']

gluon_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
applications_parent = gluon_parent
pjoin = os.path.join

error_message_ticket = ('<html><body><h1>Internal error</h1>Ticket issued: '
                        '<a href="/admin/default/ticket/%(ticket)s" target="_blank">'
                        '%(ticket)s</a></body></html>')
regex_url = re.compile(r'^/((?P<a>\w+)(/(?P<c>\w+)(/(?P<z>(?P<f>\w+)(\.(?P<e>[\w.]+))?'
                       r'(?P<s>.*)))?)?)?$')
regex_args = re.compile(r'[^\w/.@=-]')
regex_version = re.compile(r'^_\d+\.\d+\.\d+$')
regex_client = re.compile(r'[\w\-:]+(\.[\w\-]+)*\.?')
regex_session_id = re.compile(r'^([\w\-]+/)?[\w\-\.]+$')
APP_FOLDERS = ('models', 'views', 'controllers', 'databases', 'modules', 'cron',
               'errors', 'sessions', 'languages', 'static', 'private', 'uploads')

try:
    with open(pjoin(gluon_parent, 'VERSION')) as _f:
        web2py_version = _f.read().strip()
except OSError:
    raise RuntimeError('Cannot determine web2py version') from None


def create_missing_folders():
    """Like web2py, create these in the web2py root (fails if it is not writable)."""
    for name in ('applications', 'deposit', 'site-packages', 'logs'):
        path = pjoin(gluon_parent, name)
        if not os.path.exists(path):
            os.mkdir(path)
    for path in (pjoin(gluon_parent, 'site-packages'), gluon_parent):
        sys.path = [path] + [p for p in sys.path if p != path]


def load_routes():
    routes = Storage(default_application='init', default_controller='default',
                     default_function='index')
    filename = pjoin(applications_parent, 'routes.py')
    if os.path.exists(filename):
        symbols = {}
        with open(filename) as f:
            exec(compile(f.read(), filename, 'exec'), symbols)
        unsupported = {'routers', 'routes_in', 'routes_out', 'routes_app',
                       'routes_onerror'} & set(symbols)
        if unsupported:
            raise RuntimeError('TEST STAND-IN does not implement %s in routes.py'
                               % ', '.join(sorted(unsupported)))
        for key in list(routes):
            routes[key] = symbols.get(key, routes[key])
    return routes


create_missing_folders()
custom_import_install()
routes = load_routes()
_local_hosts = []


def local_hosts(env):
    if not _local_hosts:
        hosts = {'127.0.0.1', '::ffff:127.0.0.1', '::1'}
        try:
            fqdn = socket.getfqdn()
            hosts.update([socket.gethostname(), fqdn])
            hosts.update(info[4][0] for info in socket.getaddrinfo(fqdn, None))
            if env.server_name:
                hosts.add(env.server_name)
                hosts.update(info[4][0] for info in socket.getaddrinfo(env.server_name, None))
        except (OSError, UnicodeError):
            pass
        _local_hosts.extend(hosts)
    return _local_hosts


def get_client(env):
    """First address in X-Forwarded-For, else REMOTE_ADDR, else 127.0.0.1."""
    for value in (env.http_x_forwarded_for, env.remote_addr):
        match = regex_client.search(value or '')
        if match:
            client = match.group()
            break
    else:
        client = '127.0.0.1'
    try:
        ipaddress.ip_address(client)
    except ValueError:
        raise HTTP(400, 'Bad Request (request.client=%s)' % client) from None
    return client


def url_in(request, environ):
    """Parse PATH_INFO; return the static file path or None."""
    path = unquote(environ.get('PATH_INFO') or '/').replace('\\', '/') or '/'
    if path.endswith('/') and len(path) > 1:
        path = path[:-1]
    match = regex_url.match(path)
    if not match:
        raise HTTP(400, error_message % 'invalid request', web2py_error='invalid path')
    raw_args = match.group('s') or ''
    if match.group('c') == 'static':
        filename = (match.group('z') or '').replace(' ', '_')
        if not filename:
            raise HTTP(404)
        items = filename.split('/', 1)
        version = None
        if len(items) == 2 and regex_version.match(items[0]):
            version, filename = items
        static_folder = pjoin(applications_parent, 'applications', match.group('a'), 'static')
        static_file = os.path.abspath(pjoin(static_folder, filename))
        if not static_file.startswith(static_folder + os.sep):
            raise HTTP(400, error_message % 'invalid request', web2py_error='invalid path')
        return static_file, version
    request.application = match.group('a') or routes.default_application
    request.controller = match.group('c') or routes.default_controller
    request.function = match.group('f') or routes.default_function
    request.raw_extension = match.group('e')
    request.extension = request.raw_extension or 'html'
    request.raw_args = raw_args[1:] if raw_args.startswith('/') else raw_args
    request.args = List(regex_args.sub('_', request.raw_args).split('/')) \
        if request.raw_args else List()
    return None, None


def serve_static(request, static_file, version):
    env = request.env
    if os.path.isdir(static_file):
        raise HTTP(403, web2py_error='file is a directory')
    if not os.path.isfile(static_file):
        raise HTTP(404, web2py_error='invalid file')
    stat = os.stat(static_file)
    headers = {'Content-Type': contenttype(static_file), 'Pragma': 'cache',
               'Cache-Control': 'private',
               'Last-Modified': formatdate(int(stat.st_mtime), usegmt=True)}
    if version:
        headers['Cache-Control'] = 'max-age=315360000'
        headers['Expires'] = 'Thu, 31 Dec 2037 23:59:59 GMT'
    if env.query_string and env.query_string.startswith('attachment'):
        headers['Content-Disposition'] = 'attachment'
    # as web2py: 304 only when If-Modified-Since is exactly this Last-Modified (what browsers
    # send back), and with no header but Content-Type
    if env.http_if_modified_since == headers['Last-Modified']:
        raise HTTP(304, **{'Content-Type': headers['Content-Type']})
    with open(static_file, 'rb') as f:
        raise HTTP(200, f.read(), **headers)


def parse_vars(request, environ):
    env = request.env
    for key, value in parse_qsl(env.query_string or '', keep_blank_values=True):
        _add(request.get_vars, key, value)
    try:
        length = int(env.content_length or 0)
    except ValueError:
        length = 0
    body = environ['wsgi.input'].read(length) if length and environ.get('wsgi.input') else b''
    request.body = io.BytesIO(body)
    ctype = env.content_type or ''
    if body and env.request_method in ('POST', 'PUT', 'PATCH', 'DELETE', 'BOTH'):
        if ctype.startswith('application/x-www-form-urlencoded'):
            for key, value in parse_qsl(body.decode('utf8', 'replace'), keep_blank_values=True):
                _add(request.post_vars, key, value)
        elif ctype.startswith('multipart/form-data'):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b'Content-Type: ' + ctype.encode('latin1') + b'\r\n\r\n' + body)
            for part in message.iter_parts():
                name = part.get_param('name', header='content-disposition')
                payload = part.get_payload(decode=True) or b''
                if part.get_filename() is not None:
                    value = Storage(filename=part.get_filename(), file=io.BytesIO(payload),
                                    value=payload, type=part.get_content_type())
                else:
                    value = payload.decode(part.get_content_charset() or 'utf8', 'replace')
                _add(request.post_vars, name, value)
        elif ctype.startswith('application/json'):
            try:
                data = json.loads(body)
            except ValueError:
                data = None
            if isinstance(data, dict):
                request.post_vars.update(data)
    request.vars.update(request.get_vars)
    for key, value in request.post_vars.items():
        if key in request.get_vars:
            old = request.get_vars[key]
            old = old if isinstance(old, list) else [old]
            new = value if isinstance(value, list) else [value]
            request.vars[key] = new + old
        else:
            request.vars[key] = value


def _add(storage, key, value):
    if key in storage:
        old = storage[key]
        storage[key] = (old if isinstance(old, list) else [old]) + [value]
    else:
        storage[key] = value


def _session_hash(session):
    return hashlib.md5(pickle.dumps(dict(session), pickle.HIGHEST_PROTOCOL)).hexdigest()


def session_connect(request, response, session):
    """File sessions in applications/<app>/sessions/<client>-<uuid>."""
    name = 'session_id_%s' % request.application.lower()
    response.session_id_name = name
    folder = pjoin(request.folder, 'sessions')
    sid = request.cookies[name].value if name in request.cookies else None
    if sid and regex_session_id.match(sid):
        try:
            with open(pjoin(folder, sid), 'rb') as f:
                session.update(pickle.load(f))
        except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError):
            sid = None
    else:
        sid = None
    response.session_hash = _session_hash(session) if sid else None
    if not sid:
        sid = '%s-%s' % (request.client.replace(':', '.'), uuid.uuid4())
    response.session_id = sid
    response.session_filename = pjoin(folder, sid)
    if session.flash:
        response.flash, session.flash = session.flash, None


def session_save(request, response, session):
    name = response.session_id_name
    if session._forget:
        response.cookies.pop(name, None)
        return
    new_hash = _session_hash(session)
    if new_hash != response.session_hash and (session or response.session_hash):
        tmp = '%s.%s.tmp' % (response.session_filename, uuid.uuid4().hex)
        with open(tmp, 'wb') as f:
            pickle.dump(dict(session), f, pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, response.session_filename)
    response.cookies[name] = response.session_id
    morsel = response.cookies[name]
    morsel['path'] = '/'
    morsel['httponly'] = True
    morsel['samesite'] = 'Lax'
    if session._secure:
        morsel['secure'] = True


def log_ticket(request, layer=''):
    """Pickle the traceback to applications/<app>/errors/; return '<app>/<id>'."""
    ticket_id = '%s.%s.%s' % (request.client.replace(':', '_'),
                              request.now.strftime('%Y-%m-%d.%H-%M-%S'), uuid.uuid4())
    code = ''
    if layer and os.path.isfile(layer):
        with open(layer, encoding='utf8', errors='replace') as f:
            code = f.read()
    data = dict(layer=layer or 'Framework', code=code, output='',
                traceback=traceback.format_exc(), snapshot={})
    try:
        with open(pjoin(request.folder, 'errors', ticket_id), 'wb') as f:
            pickle.dump(data, f)
    except OSError:
        traceback.print_exc()
        return 'unrecoverable'
    return '%s/%s' % (request.application, ticket_id)


def _error_layer():
    """The app file (model/controller/view) where the current exception was raised."""
    for frame, _line in reversed(list(traceback.walk_tb(sys.exc_info()[2]))):
        filename = frame.f_code.co_filename
        if os.sep + 'applications' + os.sep in filename:
            return filename
    return ''


def serve_controller(request, response, session):
    env = build_environment(request, response, session)
    response.view = '%s/%s.%s' % (request.controller, request.function, request.extension)
    run_models_in(env)
    response._view_environment = dict(env)
    page = run_controller_in(request.controller, request.function, env)
    if isinstance(page, dict):
        response._vars = page
        response._view_environment.update(page)
        page = run_view_in(response._view_environment)
    response.headers.setdefault('Content-Type', contenttype('.' + request.extension))
    response.headers.setdefault('Cache-Control', 'no-store, no-cache, must-revalidate, '
                                'post-check=0, pre-check=0')
    response.headers.setdefault('Expires', formatdate(usegmt=True))
    response.headers.setdefault('Pragma', 'no-cache')
    raise HTTP(response.status, page, **response.headers)


def wsgibase(environ, responder):
    """The WSGI application (wsgihandler.application)."""
    current.__dict__.clear()
    request = Request(environ)
    response = Response()
    session = Session()
    env = request.env
    env.web2py_version = web2py_version
    env.web2py_path = applications_parent
    current.request, current.response, current.session = request, response, session
    app_started = False
    try:
        try:
            static_file, version = url_in(request, environ)
            if static_file:
                serve_static(request, static_file, version)
            app = request.application
            client = get_client(env)
            request.update(
                client=client,
                folder=pjoin(applications_parent, 'applications', app) + os.sep,
                ajax=str(env.http_x_requested_with).lower() == 'xmlhttprequest',
                is_local=env.remote_addr in local_hosts(env) and client == env.remote_addr,
                is_https=env.wsgi_url_scheme in ('https', 'HTTPS')
                or env.http_x_forwarded_proto in ('https', 'HTTPS') or env.https == 'on',
                url=environ.get('PATH_INFO', ''),
                uuid='%s/%s.%s.%s' % (app, client.replace(':', '_'),
                                      request.now.strftime('%Y-%m-%d.%H-%M-%S'), uuid.uuid4()))
            if not os.path.isdir(request.folder):
                if app == routes.default_application and app != 'welcome':
                    redirect(URL('welcome', 'default', 'index'))
                raise HTTP(404, error_message % 'invalid request',
                           web2py_error='invalid application')
            if not request.is_local and os.path.exists(pjoin(request.folder, 'DISABLED')):
                page = pjoin(request.folder, 'static', '503.html')
                if os.path.exists(page):
                    with open(page) as f:
                        raise HTTP(503, f.read())
                raise HTTP(503, '<html><body><h1>Temporarily down for maintenance'
                                '</h1></body></html>')
            for name in APP_FOLDERS:
                path = pjoin(request.folder, name)
                if not os.path.exists(path):
                    os.mkdir(path)
            parse_vars(request, environ)
            for cookie in (env.http_cookie or '').split(';'):
                try:
                    request.cookies.load(cookie.strip())
                except Exception:
                    pass
            session_connect(request, response, session)
            app_started = True
            serve_controller(request, response, session)
        except HTTP as hr:
            http_response = hr
            if app_started:
                BaseAdapter.close_all_instances('commit')
                session_save(request, response, session)
                http_response.cookies2headers(response.cookies)
    except Exception:
        layer = _error_layer()
        try:
            BaseAdapter.close_all_instances('rollback')
        except Exception:
            pass
        if request.folder and os.path.isdir(pjoin(request.folder, 'errors')):
            ticket = log_ticket(request, layer)
        else:
            traceback.print_exc()
            ticket = 'unrecoverable'
        http_response = HTTP(500, error_message_ticket % dict(ticket=ticket),
                             web2py_error='ticket %s' % ticket)
    return http_response.to(responder, env=env)


def save_password(password, port):
    """Write parameters_<port>.py with the admin password, as web2py does."""
    filename = pjoin(applications_parent, 'parameters_%i.py' % port)
    if password == '<recycle>':
        if os.path.exists(filename):
            return
        password = ''
    with open(filename, 'w') as f:
        if password:
            f.write('password="%s"\n' % str(CRYPT()(password)[0]))
        else:
            f.write('password=None\n')
