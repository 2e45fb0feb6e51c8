"""TEST STAND-IN (not web2py): web2py's import hook for applications/<app>/modules.

Inside a request, `import x` / `from x import y` in app code is tried as a
normal import first and, if that fails, as applications.<app>.modules.x --
the same behaviour as web2py's custom importer, so app code can import its
own modules either way.
"""

import builtins
import os
import sys

from gluon.globals import current

NATIVE_IMPORTER = builtins.__import__
INVALID_MODULES = {'', 'gluon', 'applications'}


def custom_importer(name, globals=None, locals=None, fromlist=(), level=0):
    request = getattr(current, 'request', None)
    if request is None or not request.folder or level > 0 \
            or name.partition('.')[0] in INVALID_MODULES:
        return NATIVE_IMPORTER(name, globals, locals, fromlist, level)
    try:
        return NATIVE_IMPORTER(name, globals, locals, fromlist, level)
    except ImportError:
        pass
    items = request.folder.rstrip(os.sep).split(os.sep)
    modules_prefix = '.'.join(items[-2:]) + '.modules'
    if fromlist:
        return NATIVE_IMPORTER(modules_prefix + '.' + name, globals, locals, fromlist, level)
    result = None
    for itemname in name.split('.'):
        NATIVE_IMPORTER(modules_prefix, globals, locals, (itemname,), level)
        try:
            result = result or sys.modules[modules_prefix + '.' + itemname]
        except KeyError as e:
            raise ImportError('Cannot import module %s' % e) from None
        modules_prefix += '.' + itemname
    return result


def custom_import_install():
    if builtins.__import__ is NATIVE_IMPORTER:
        builtins.__import__ = custom_importer
