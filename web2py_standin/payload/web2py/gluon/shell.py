"""TEST STAND-IN (not web2py): run a script in an app's environment (web2py.py -S), or an
app's scheduler worker (web2py.py -K)."""

import os
import sys
import traceback

from gluon.compileapp import build_environment, run_models_in
from gluon.custom_import import custom_import_install
from gluon.dal import BaseAdapter
from gluon.globals import Request, Response, Session
from gluon.storage import List


def env(a, import_models=False, c='default', f='index', is_shell=True, extra_request=None):
    """Environment dict of app `a` for a fake local request to /a/c/f (request.is_shell for
    web2py.py -S; the scheduler passes is_shell=False and extra_request={'is_scheduler': True},
    set before the models run, as in web2py)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    request = Request({'PATH_INFO': '/%s/%s/%s' % (a, c, f), 'REQUEST_METHOD': 'GET',
                       'REMOTE_ADDR': '127.0.0.1', 'HTTP_HOST': '127.0.0.1'})
    request.update(application=a, controller=c, function=f, extension='html',
                   args=List(), folder=os.path.join(root, 'applications', a) + os.sep,
                   client='127.0.0.1', is_local=True, is_https=False, is_shell=is_shell)
    request.update(extra_request or {})
    request.env.web2py_path = root
    if not os.path.isdir(request.folder):
        raise RuntimeError('application %s does not exist' % a)
    environment = build_environment(request, Response(), Session())
    if import_models:
        run_models_in(environment)
    return environment


def run(appname, import_models=False, script=None, args=()):
    custom_import_install()
    a, _, rest = appname.partition('/')
    c, _, f = rest.partition('/')
    environment = env(a, import_models, c or 'default', f or 'index')
    sys.argv = [script] + list(args)
    # as web2py: the script's traceback goes to stdout and the transaction is rolled back; a
    # sys.exit() still ends the process with its code, any other exception exits 0
    try:
        with open(script, encoding='utf8') as fh:
            exec(compile(fh.read(), script, 'exec'), environment)
        if import_models:
            BaseAdapter.close_all_instances('commit')
    except SystemExit:
        print(traceback.format_exc())
        if import_models:
            BaseAdapter.close_all_instances('rollback')
        raise
    except Exception:
        print(traceback.format_exc())
        if import_models:
            BaseAdapter.close_all_instances('rollback')
    return 0


def app_exists(a):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return bool(a) and os.path.isdir(os.path.join(root, 'applications', a))


def run_scheduler(app_groups):
    """web2py.py -K APP[:GROUP...]: as web2py, run APP's models (request.is_scheduler) and then
    `current._scheduler.loop()` (the worker; gluon.scheduler). As in web2py, when the models
    define no Scheduler the AttributeError's traceback goes to stdout and the exit status is 0;
    an exception in a model exits 1."""
    a = app_groups[0]
    print('starting single-scheduler for "%s"...' % a)
    sys.stdout.flush()
    custom_import_install()
    environment = env(a, True, is_shell=False, extra_request={'is_scheduler': True})
    code = 'from gluon.globals import current;'
    if len(app_groups) > 1:
        code += "current._scheduler.group_names=['%s'];" % "','".join(app_groups[1:])
    code += 'current._scheduler.loop()'
    try:
        exec(code, environment)
        BaseAdapter.close_all_instances('commit')
    except SystemExit:
        print(traceback.format_exc())
        BaseAdapter.close_all_instances('rollback')
        raise
    except Exception:
        print(traceback.format_exc())
        BaseAdapter.close_all_instances('rollback')
    return 0
