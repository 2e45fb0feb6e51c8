"""TEST STAND-IN (not web2py): HTTP exception and redirect, as in gluon.http."""

import re

__all__ = ['HTTP', 'redirect']

defined_status = {
    200: 'OK', 201: 'CREATED', 202: 'ACCEPTED', 204: 'NO CONTENT',
    206: 'PARTIAL CONTENT', 301: 'MOVED PERMANENTLY', 302: 'FOUND',
    303: 'SEE OTHER', 304: 'NOT MODIFIED', 307: 'TEMPORARY REDIRECT',
    308: 'PERMANENT REDIRECT', 400: 'BAD REQUEST', 401: 'UNAUTHORIZED',
    403: 'FORBIDDEN', 404: 'NOT FOUND', 405: 'METHOD NOT ALLOWED',
    409: 'CONFLICT', 410: 'GONE', 413: 'REQUEST ENTITY TOO LARGE',
    500: 'INTERNAL SERVER ERROR', 501: 'NOT IMPLEMENTED', 502: 'BAD GATEWAY',
    503: 'SERVICE UNAVAILABLE', 504: 'GATEWAY TIMEOUT',
}
regex_status = re.compile(r'^\d{3} [0-9A-Z ]+$')


class HTTP(Exception):
    def __init__(self, status, body='', cookies=None, **headers):
        self.status = status
        self.body = body
        self.headers = headers
        self.cookies2headers(cookies)

    def cookies2headers(self, cookies):
        if cookies and len(cookies) > 0:
            self.headers['Set-Cookie'] = [m.OutputString() for m in cookies.values()]

    def to(self, responder, env=None):
        env = env or {}
        status = self.status
        headers = self.headers
        if status in defined_status:
            status = '%d %s' % (status, defined_status[status])
        elif isinstance(status, int):
            status = '%d UNKNOWN ERROR' % status
        else:
            status = str(status)
            if not regex_status.match(status):
                status = '500 %s' % defined_status[500]
        headers.setdefault('Content-Type', 'text/html; charset=UTF-8')
        body = self.body
        if status[:1] == '4' and not body:
            body = status
        if isinstance(body, str):
            body = body.encode('utf8')
        if isinstance(body, (bytes, bytearray)):
            headers['Content-Length'] = len(body)
        rheaders = []
        for k, v in headers.items():
            if isinstance(v, list):
                rheaders += [(k, str(item)) for item in v]
            elif v is not None:
                rheaders.append((k, str(v)))
        responder(status, rheaders)
        if env.get('request_method', '') == 'HEAD':
            return [b'']
        if isinstance(body, (bytes, bytearray)):
            return [bytes(body)]
        if hasattr(body, '__iter__'):
            return body
        return [str(body).encode('utf8')]

    @property
    def message(self):
        return '%s %s' % (self.status, defined_status.get(self.status, ''))

    def __str__(self):
        return self.message


def redirect(location='', how=303, client_side=False, headers=None):
    """Raise an HTTP redirect (303 by default, like web2py)."""
    headers = headers or {}
    if not location:
        raise HTTP(200, **headers)
    loc = str(location).replace('\r', '%0D').replace('\n', '%0A')
    headers['Location'] = loc
    raise HTTP(how, 'You are being redirected <a href="%s">here</a>' % loc, **headers)
