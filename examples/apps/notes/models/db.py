# -*- coding: utf-8 -*-
# Database of the notes application.
# Without folder=, web2py keeps storage.sqlite and the *.table migration
# files in applications/notes/databases/, and uploads in applications/notes/uploads/.

db = DAL('sqlite://storage.sqlite', pool_size=1, lazy_tables=False)

db.define_table(
    'note',
    Field('title', 'string', length=200, requires=IS_NOT_EMPTY()),
    Field('body', 'text'),
    Field('attachment', 'upload', autodelete=True),
    Field('created_on', 'datetime', default=request.now, writable=False),
    format='%(title)s',
)

# only the JSON API may use a generic view (views/generic.json)
response.generic_patterns = ['*.json']
