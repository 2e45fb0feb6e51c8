"""TEST STAND-IN (not web2py): XML escaping, a few HTML helpers and URL()."""

import html as _html
import re
from urllib.parse import quote, urlencode

__all__ = ['xmlescape', 'XML', 'DIV', 'CAT', 'TAG', 'URL', 'A', 'B', 'BR', 'BUTTON',
           'EM', 'FORM', 'H1', 'H2', 'H3', 'H4', 'HR', 'I', 'IMG', 'INPUT', 'LABEL',
           'LI', 'LINK', 'META', 'OL', 'OPTION', 'P', 'PRE', 'SCRIPT', 'SELECT',
           'SPAN', 'STRONG', 'STYLE', 'TABLE', 'TBODY', 'TD', 'TEXTAREA', 'TH',
           'THEAD', 'TITLE', 'TR', 'UL']

regex_crlf = re.compile('\r|\n')


def xmlescape(data, quote=True):
    """Escape data for HTML unless it knows how to render itself (.xml())."""
    if hasattr(data, 'xml') and callable(data.xml):
        return data.xml()
    if isinstance(data, bytes):
        data = data.decode('utf8', 'replace')
    elif not isinstance(data, str):
        data = str(data)
    return _html.escape(data, quote)


class XML:
    """Text that is output without escaping. (sanitize= is accepted, ignored.)"""

    def __init__(self, text, sanitize=False, permitted_tags=None, allowed_attributes=None):
        self.text = text.decode('utf8') if isinstance(text, bytes) else str(text)

    def xml(self):
        return self.text

    __str__ = xml

    def __add__(self, other):
        return XML(self.text + xmlescape(other))

    def __eq__(self, other):
        return str(self) == str(other)

    def __hash__(self):
        return hash(self.text)


class DIV:
    """Base of the HTML helpers: DIV('x', _class='y').xml() == '<div class="y">x</div>'."""

    tag = 'div'
    void = False

    def __init__(self, *components, **attributes):
        self.components = list(components)
        self.attributes = attributes

    def __getitem__(self, key):
        return self.attributes.get(key) if isinstance(key, str) else self.components[key]

    def append(self, value):
        self.components.append(value)

    def _attrs(self):
        out = []
        for key in sorted(k for k in self.attributes if k.startswith('_')):
            value = self.attributes[key]
            name = key[1:].replace('_', '-') if key.startswith('_data_') else key[1:]
            if value is True:
                value = name
            elif value is None or value is False:
                continue
            out.append(' %s="%s"' % (name, xmlescape(value)))
        return ''.join(out)

    def xml(self):
        if self.void:
            return '<%s%s />' % (self.tag, self._attrs())
        inner = ''.join(xmlescape(c) for c in self.components)
        if self.tag is None:
            return inner
        return '<%s%s>%s</%s>' % (self.tag, self._attrs(), inner, self.tag)

    __str__ = xml


def _tag(name, void=False):
    return type(name.upper(), (DIV,), {'tag': name, 'void': void})


class _TagFactory:
    """TAG.name(...) / TAG['name'](...) build any tag."""

    def __getattr__(self, name):
        return _tag(name)

    __getitem__ = __getattr__


TAG = _TagFactory()
CAT = type('CAT', (DIV,), {'tag': None})
A, B, BUTTON, EM, FORM, I, LABEL = (_tag(n) for n in ('a', 'b', 'button', 'em', 'form', 'i',
                                                       'label'))
H1, H2, H3, H4 = (_tag(n) for n in ('h1', 'h2', 'h3', 'h4'))
LI, OL, OPTION, P, PRE, SCRIPT, SELECT = (_tag(n) for n in ('li', 'ol', 'option', 'p', 'pre',
                                                            'script', 'select'))
SPAN, STRONG, STYLE, TITLE, UL, TEXTAREA = (_tag(n) for n in ('span', 'strong', 'style',
                                                              'title', 'ul', 'textarea'))
TABLE, TBODY, TD, TH, THEAD, TR = (_tag(n) for n in ('table', 'tbody', 'td', 'th', 'thead',
                                                     'tr'))
BR, HR, IMG, INPUT, LINK, META = (_tag(n, void=True) for n in ('br', 'hr', 'img', 'input',
                                                               'link', 'meta'))


def URL(a=None, c=None, f=None, r=None, args=None, vars=None, anchor='',
        extension=None, env=None, scheme=None, host=None, port=None,
        url_encode=True, **ignored):
    """Build /a/c/f[.ext][/args][?vars][#anchor] the way web2py's URL() does
    without routes (hmac/user_signature are not supported by the stand-in)."""
    from gluon.globals import current
    args = [] if args in (None, []) else args
    if not isinstance(args, (list, tuple)):
        args = [args]
    args = list(args)
    vars = vars or {}
    if a and not c and not f:
        (f, a, c) = (a, c, f)
    elif a and c and not f:
        (c, f, a) = (a, c, f)
    r = r or getattr(current, 'request', None)
    application = controller = function = None
    if r:
        application, controller, function = r.application, r.controller, r.function
        env = r.env
        if extension is None and r.extension != 'html':
            extension = r.extension
    application = a or application
    controller = c or controller
    if f:
        f = f if isinstance(f, str) else f.__name__
        if '/' in f:
            items = f.lstrip('/').split('/')
            f, args = items[0], items[1:] + args
        function = f
        if controller == 'static':
            extension = None
        if '.' in function:
            function, extension = function.rsplit('.', 1)
    if not (application and controller and function):
        raise SyntaxError('not enough information to build the url (%s %s %s)'
                          % (application, controller, function))
    other = ''
    if args:
        joined = '/' + '/'.join(str(x) for x in args)
        other = quote(joined) if url_encode else joined
        if other.endswith('/'):
            other += '/'
    list_vars = []
    for key, vals in sorted(vars.items()):
        for val in vals if isinstance(vals, (list, tuple)) else [vals]:
            list_vars.append((key, val))
    if list_vars:
        other += '?' + urlencode(list_vars)
    if anchor:
        other += '#' + (quote(str(anchor)) if url_encode else str(anchor))
    if extension:
        function += '.' + extension
    if regex_crlf.search(''.join([application, controller, function, other])):
        raise SyntaxError('CRLF Injection Detected')
    url = '/%s/%s/%s%s' % (application, controller, function, other)
    if host is True or (host is None and (scheme or port is not None)):
        host = env.http_host if env else None
    if host:
        if scheme is True or scheme is None:
            scheme = (env.wsgi_url_scheme or 'http').lower() if env else 'http'
        if port is not None:
            host = '%s:%s' % (host.split(':')[0], port)
        url = '%s://%s%s' % (scheme, host, url)
    return url
