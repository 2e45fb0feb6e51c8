"""TEST STAND-IN (not web2py): Storage and List, as in gluon.storage."""

__all__ = ['Storage', 'List']

DEFAULT = object()


class Storage(dict):
    """A dict whose keys are also attributes; missing keys read as None."""

    __slots__ = ()
    __setattr__ = dict.__setitem__
    __delattr__ = dict.__delitem__
    __getitem__ = dict.get
    __getattr__ = dict.get

    def __repr__(self):
        return '<Storage %s>' % dict.__repr__(self)

    def __getstate__(self):
        return dict(self)

    def __setstate__(self, state):
        self.update(state)

    def __copy__(self):
        return self.__class__(self)

    def getlist(self, key):
        value = self.get(key, [])
        if value is None or isinstance(value, (list, tuple)):
            return value or []
        return [value]

    def getfirst(self, key, default=None):
        values = self.getlist(key)
        return values[0] if values else default

    def getlast(self, key, default=None):
        values = self.getlist(key)
        return values[-1] if values else default


class List(list):
    """request.args: a list that can be called, like web2py's List."""

    def __call__(self, i, default=DEFAULT, cast=None, otherwise=None):
        n = len(self)
        if 0 <= i < n or -n <= i < 0:
            value = self[i]
        elif default is DEFAULT:
            value = None
        else:
            value, cast = default, None
        if cast:
            try:
                value = cast(value)
            except (ValueError, TypeError):
                from gluon.http import HTTP, redirect
                if otherwise is None:
                    raise HTTP(404)
                if isinstance(otherwise, str):
                    redirect(otherwise)
                if callable(otherwise):
                    return otherwise()
                raise RuntimeError('invalid otherwise')
        return value
