"""TEST STAND-IN (not web2py): gluon.serializers.json as used by views/generic.json."""

import datetime
import decimal
import json as _json

__all__ = ['json', 'custom_json']


def custom_json(o):
    if hasattr(o, 'custom_json') and callable(o.custom_json):
        return o.custom_json()
    if isinstance(o, datetime.datetime):
        return o.isoformat()[:19].replace('T', ' ')
    if isinstance(o, (datetime.date, datetime.time)):
        return o.isoformat()[:19]
    if isinstance(o, decimal.Decimal):
        return float(o)
    if isinstance(o, (bytes, bytearray)):
        return o.decode('utf8')
    if isinstance(o, set):
        return list(o)
    if hasattr(o, 'as_list') and callable(o.as_list):
        return o.as_list()
    if hasattr(o, 'as_dict') and callable(o.as_dict):
        return o.as_dict()
    if hasattr(o, 'xml') and callable(o.xml):
        return o.xml()
    raise TypeError(repr(o) + ' is not JSON serializable')


def json(value, default=custom_json, indent=None, sort_keys=False, cls=None):
    return _json.dumps(value, default=default, indent=indent, sort_keys=sort_keys)
