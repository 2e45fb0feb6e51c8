"""TEST STAND-IN (not web2py): T, the translator reading languages/<lang>.py.

Language choice follows web2py: the Accept-Language header (by q value),
exact file first (fr-ca.py) then the primary tag (fr.py); a language equal to
default.py's '!langcode!' or with no file uses default.py; a key missing from
the file is returned untranslated. Unlike web2py, the stand-in never writes
new keys back into the language files.
"""

import ast
import os

__all__ = ['translator']

_cache = {}


def read_dict(filename):
    try:
        mtime = os.stat(filename).st_mtime
    except OSError:
        return {}
    cached = _cache.get(filename)
    if cached and cached[0] == mtime:
        return cached[1]
    with open(filename, encoding='utf8') as f:
        data = ast.literal_eval(f.read().lstrip('\ufeff'))
    _cache[filename] = (mtime, data)
    return data


def parse_accept_language(header):
    languages = []
    for i, item in enumerate((header or '').split(',')):
        parts = item.strip().split(';')
        tag = parts[0].strip().lower()
        q = 1.0
        for p in parts[1:]:
            if p.strip().startswith('q='):
                try:
                    q = float(p.strip()[2:])
                except ValueError:
                    q = 0.0
        if tag and tag != '*':
            languages.append((-q, i, tag))
    return [tag for _, _, tag in sorted(languages)]


class translator:
    def __init__(self, langpath, http_accept_language):
        self.langpath = langpath
        self.default_t = read_dict(os.path.join(langpath, 'default.py'))
        self.default_language = self.default_t.get('!langcode!', 'en')
        self.current_languages = [self.default_language]
        self.force(*parse_accept_language(http_accept_language))

    def force(self, *languages):
        """Use the first of the given languages that has a file (else default.py)."""
        self.accepted_language = self.default_language
        self.t = self.default_t
        for language in languages:
            if not language:
                continue
            language = language.lower()
            if language in self.current_languages:
                break
            for candidate in (language, language.split('-')[0]):
                filename = os.path.join(self.langpath, candidate + '.py')
                if candidate != 'default' and os.path.isfile(filename):
                    self.accepted_language = candidate
                    self.t = read_dict(filename)
                    return self.accepted_language
        return self.accepted_language

    def set_current_languages(self, *languages):
        self.current_languages = [x.lower() for x in languages]

    def __call__(self, message, symbols=None, language=None, lazy=None, ns=None):
        message = str(message)
        text = self.t.get(message) or self.default_t.get(message) or message
        if symbols or symbols == 0:
            text = text % symbols
        return text
