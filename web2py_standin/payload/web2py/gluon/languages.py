"""TEST STAND-IN (not web2py): T, the translator reading languages/<lang>.py.

Language choice follows web2py: languages of the Accept-Language header in
order (web2py ignores q), each tried as xx-yy.py, xx.py, then any xx*.py; the
default language (default.py's '!langcode!') or no match uses default.py; a
key missing from the file is returned untranslated. Unlike web2py, the
stand-in never writes new keys back into the language files.
"""

import ast
import os
import re

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


regex_language = re.compile(r'([a-z]{2,3}(?:-[a-z]{2})?(?:-[a-z]{2})?)(?:[,;]|$)')


class translator:
    def __init__(self, langpath, http_accept_language):
        self.langpath = langpath
        self.default_t = read_dict(os.path.join(langpath, 'default.py'))
        self.default_language = self.default_t.get('!langcode!', 'en')
        self.current_languages = [self.default_language]
        self.http_accept_language = http_accept_language or ''
        self.force(self.http_accept_language)

    def force(self, *languages):
        """Use the first language (in header order, q ignored, as web2py does)
        that has a file: xx-yy.py, then xx.py, then any xx*.py. A language of
        current_languages (default.py's '!langcode!') means no translation."""
        if len(languages) == 1 and isinstance(languages[0], str):
            languages = regex_language.findall(languages[0].lower())
        languages = [x.lower() for x in languages if x]
        try:
            available = {n[:-3] for n in os.listdir(self.langpath)
                         if n.endswith('.py') and n != 'default.py'
                         and not n.startswith('plural-')}
        except OSError:
            available = set()
        all_languages = available | set(self.current_languages)
        self.accepted_language = self.current_languages[0]
        self.t = self.default_t
        for lang in languages:
            language = ''
            if lang[:5] in all_languages:
                language = lang[:5]
            elif len(lang) > 2 and lang[:2] in all_languages:
                language = lang[:2]
            else:
                language = next((x for x in sorted(all_languages) if x[:2] == lang[:2]), '')
            if language:
                if language not in self.current_languages:
                    self.t = read_dict(os.path.join(self.langpath, language + '.py'))
                    self.accepted_language = language
                break
        return self.accepted_language

    def set_current_languages(self, *languages):
        self.current_languages = [x.lower() for x in languages] or [self.default_language]
        self.force(self.http_accept_language)

    def __call__(self, message, symbols=None, language=None, lazy=None, ns=None):
        message = str(message)
        text = self.t.get(message) or self.default_t.get(message) or message
        if symbols or symbols == 0:
            text = text % symbols
        return text
