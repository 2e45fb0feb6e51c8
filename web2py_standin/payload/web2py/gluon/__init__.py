"""
TEST STAND-IN (not web2py): a minimal re-implementation of web2py's gluon
package, written for deployment tests of the pyinfra-web2py project.

Like web2py, it uses the pydal bundled in gluon/packages/dal when no other
pydal is importable.
"""

import os
import sys

_pydal_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'packages', 'dal')
if _pydal_path not in sys.path:
    sys.path.append(_pydal_path)
try:
    import pydal
except ImportError:  # pragma: no cover
    raise RuntimeError('gluon/packages/dal/pydal is missing from this TEST STAND-IN') from None
sys.modules['pydal'] = pydal

import gluon.html  # noqa: E402
import gluon.validators  # noqa: E402
from gluon.globals import current  # noqa: E402
from gluon.html import *  # noqa: E402,F403
from gluon.validators import *  # noqa: E402,F403
from gluon.http import HTTP, redirect  # noqa: E402
from gluon.dal import DAL, Field  # noqa: E402
from gluon.storage import Storage  # noqa: E402

STANDIN = True
__all__ = ['current', 'HTTP', 'redirect', 'DAL', 'Field', 'Storage', 'STANDIN']
__all__ += gluon.html.__all__ + gluon.validators.__all__
