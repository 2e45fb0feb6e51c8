# -*- coding: utf-8 -*-
# As web2py's examples app does: page texts are files under private/content/.
import os


def get_content(name, language='en'):
    """The text of private/content/<language>/<name>.markmin (English when missing)."""
    folder = os.path.join(request.folder, 'private', 'content')
    for lang in (language, 'en'):
        path = os.path.join(folder, lang, name + '.markmin')
        if os.path.exists(path):
            with open(path) as f:
                return f.read()
    raise HTTP(404, 'no such page')
