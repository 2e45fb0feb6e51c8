"""TEST STAND-IN (not web2py): content type from a file name or extension."""

import mimetypes

__all__ = ['contenttype']

CONTENT_TYPE = {
    '.html': 'text/html', '.load': 'text/html', '.json': 'application/json',
    '.xml': 'text/xml', '.rss': 'application/rss+xml', '.css': 'text/css',
    '.js': 'application/javascript', '.txt': 'text/plain', '.csv': 'text/csv',
    '.png': 'image/png', '.ico': 'image/x-icon', '.svg': 'image/svg+xml',
}


def contenttype(filename, default='text/plain'):
    ext = '.' + filename.rsplit('.', 1)[-1].lower() if '.' in filename else ''
    ctype = CONTENT_TYPE.get(ext) or mimetypes.guess_type('x' + ext)[0] or default
    if ctype.startswith('text/'):  # as web2py: charset only for text/*
        ctype += '; charset=utf-8'
    return ctype
