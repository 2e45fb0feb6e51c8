"""TEST STAND-IN (not web2py): DAL and Field from the bundled pydal.

As in web2py, gluon sets pydal's per-thread default folder to
applications/<app>/databases before the models run, so models can say
DAL('sqlite://storage.sqlite') without folder=.
"""

from pydal import DAL, Field  # noqa: F401
from pydal.adapters.base import BaseAdapter  # noqa: F401
from pydal.objects import Expression, Query, Row, Rows, Set, Table  # noqa: F401

from gluon.serializers import custom_json, json

DAL.serializers = {'json': json, 'custom_json': custom_json}

__all__ = ['DAL', 'Field']
