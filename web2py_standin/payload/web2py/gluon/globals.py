"""TEST STAND-IN (not web2py): current, Request, Response, Session."""

import datetime
import io
import os
import threading
import uuid
from http.cookies import SimpleCookie

from gluon.http import HTTP, redirect
from gluon.storage import List, Storage

__all__ = ['current', 'Request', 'Response', 'Session']

current = threading.local()


class Request(Storage):
    def __init__(self, environ):
        Storage.__init__(self)
        self.env = Storage((k.lower().replace('.', '_'), v) for k, v in environ.items())
        self.cookies = SimpleCookie()
        self.get_vars = Storage()
        self.post_vars = Storage()
        self.vars = Storage()
        self.args = List()
        self.now = datetime.datetime.now()
        self.utcnow = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        self.is_restful = False
        self.is_shell = False
        self.is_scheduler = False

    def requires_https(self):
        """Redirect to the https version of this URL (as web2py does)."""
        if not self.is_https:
            query = self.env.query_string
            redirect('https://%s%s%s' % (self.env.http_host, self.env.path_info,
                                         '?' + query if query else ''))

    def user_agent(self):
        return Storage(is_mobile=False, browser=Storage(name=None))


class Response(Storage):
    def __init__(self):
        Storage.__init__(self)
        self.status = 200
        self.headers = {'X-Powered-By': 'web2py'}
        self.body = io.StringIO()
        self.session_id = None
        self.cookies = SimpleCookie()
        self.flash = ''
        self.meta = Storage()
        self.menu = []
        self.files = []
        self._vars = None
        self._caller = lambda f: f()
        self._view_environment = None
        self.generic_patterns = ['*']
        self.delimiters = ('{{', '}}')

    def write(self, data, escape=True):
        from gluon.html import xmlescape
        self.body.write(xmlescape(data) if escape else str(data))

    def download(self, request, db, chunk_size=None, attachment=True, download_filename=None):
        """Serve a file from an upload field: /app/c/download/<stored name>."""
        if not request.args:
            raise HTTP(404)
        name = request.args[-1]
        items = name.split('.')
        if len(items) < 2 or items[0] not in db.tables:
            raise HTTP(404)
        field = db[items[0]][items[1]]
        try:
            filename, stream = field.retrieve(name)
        except (OSError, NotImplementedError):
            raise HTTP(404)
        from gluon.contenttype import contenttype
        headers = self.headers
        headers['Content-Type'] = contenttype(name)
        if download_filename is None:
            download_filename = filename
        if attachment:
            headers['Content-Disposition'] = 'attachment; filename="%s"' % (
                download_filename.replace('"', ''))
        data = stream.read()
        stream.close()
        raise HTTP(200, data, **headers)


class Session(Storage):
    """File-based session (the only kind the stand-in implements)."""

    __slots__ = ('_secure', '_forget')

    def __init__(self, *args):
        Storage.__init__(self, *args)
        object.__setattr__(self, '_secure', False)
        object.__setattr__(self, '_forget', False)

    def connect(self, request=None, response=None, db=None, **kwargs):
        if db is not None:
            raise NotImplementedError('TEST STAND-IN: only file sessions are supported')

    def secure(self):
        object.__setattr__(self, '_secure', True)

    def forget(self, response=None):
        object.__setattr__(self, '_forget', True)

    def renew(self, clear_session=False):
        if clear_session:
            self.clear()
        response = current.response
        old = response.session_filename
        response.session_id = '%s-%s' % (current.request.client.replace(':', '.'),
                                         uuid.uuid4())
        response.session_filename = os.path.join(os.path.dirname(old), response.session_id)
        response.session_hash = None
        if old and os.path.exists(old):
            os.unlink(old)
