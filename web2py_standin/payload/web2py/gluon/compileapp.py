"""TEST STAND-IN (not web2py): build the environment, run models, controller, view."""

import fnmatch
import importlib
import os
import re

import gluon.html
import gluon.validators
from gluon.cache import Cache
from gluon.dal import DAL, Field
from gluon.globals import current
from gluon.http import HTTP, redirect
from gluon.languages import translator
from gluon.storage import Storage
from gluon.template import render

__all__ = ['build_environment', 'run_models_in', 'run_controller_in', 'run_view_in']

error_message = '<html><body><h1>%s</h1></body></html>'
# web2py exposes functions defined without arguments whose name has no '__' prefix
regex_expose = re.compile(r'^def\s+(?P<name>_?[a-zA-Z0-9]\w*)\( *\)\s*:', re.M)
regex_model = re.compile(r'^\w+\.py$')

_base_environment = {}
for _module in (gluon.html, gluon.validators):
    _base_environment.update((k, getattr(_module, k)) for k in _module.__all__)
_base_environment.update(DAL=DAL, Field=Field, HTTP=HTTP, redirect=redirect,
                         Storage=Storage, CRYPT=gluon.validators.CRYPT)


def local_import(name, reload=False, app=None):
    app = app or current.request.application
    module = importlib.import_module('applications.%s.modules.%s' % (app, name))
    return importlib.reload(module) if reload else module


def build_environment(request, response, session):
    env = dict(_base_environment)
    t = translator(os.path.join(request.folder, 'languages'), request.env.http_accept_language)
    cache = Cache(request)
    env.update(request=request, response=response, session=session, T=t,
               cache=cache, local_import=local_import)
    current.request, current.response, current.session = request, response, session
    current.T, current.cache = t, cache
    DAL.set_folder(os.path.join(request.folder, 'databases'))
    return env


def _run(filename, env):
    with open(filename, encoding='utf8') as f:
        code = compile(f.read(), filename, 'exec')
    exec(code, env)


def run_models_in(env):
    request, response = env['request'], env['response']
    folder = os.path.join(request.folder, 'models')
    c, f = request.controller, request.function
    if response.models_to_run is None:
        response.models_to_run = [r'^\w+\.py$', r'^%s/\w+\.py$' % c, r'^%s/%s/\w+\.py$' % (c, f)]
    models = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            if regex_model.match(name):
                models.append(os.path.relpath(os.path.join(root, name), folder))
    for model in sorted(m.replace(os.sep, '/') for m in models):
        regex = response.models_to_run
        if isinstance(regex, list):
            regex = '|'.join(regex)
        if re.search(regex, model):
            _run(os.path.join(folder, model), env)


def run_controller_in(controller, function, env):
    folder = env['request'].folder
    badc = 'invalid controller (%s/%s)' % (controller, function)
    badf = 'invalid function (%s/%s)' % (controller, function)
    filename = os.path.join(folder, 'controllers', '%s.py' % controller)
    if not os.path.isfile(filename):
        raise HTTP(404, error_message % badc, web2py_error=badc)
    with open(filename, encoding='utf8') as f:
        code = f.read()
    if function not in regex_expose.findall(code):
        raise HTTP(404, error_message % badf, web2py_error=badf)
    code += '\nresponse._vars=response._caller(%s)\n' % function
    exec(compile(code, filename, 'exec'), env)
    result = env['response']._vars
    if hasattr(result, 'xml') and callable(result.xml):
        result = result.xml()
    return result


def run_view_in(env):
    request, response = env['request'], env['response']
    view = response.view
    patterns = response.generic_patterns
    short_action = '%s/%s.%s' % (request.controller, request.function, request.extension)
    allow_generic = bool(patterns) and any(fnmatch.fnmatch(short_action, p) for p in patterns)
    views = os.path.join(request.folder, 'views')
    filename = os.path.join(views, view)
    if not os.path.isfile(filename) and allow_generic:
        filename = os.path.join(views, 'generic.' + request.extension)
    if not os.path.isfile(filename):
        badv = 'invalid view (%s)' % view
        raise HTTP(404, error_message % badv, web2py_error=badv)
    render(filename, views, env)
    return response.body.getvalue()
