# -*- coding: utf-8 -*-
response.title = T('Notes')
response.subtitle = T('A tiny example application')
response.menu = [
    (T('Notes'), request.function == 'index', URL('default', 'index'), []),
    (T('API'), False, URL('default', 'api.json'), []),
    (T('RSS'), False, URL('default', 'feed.rss'), []),
]
