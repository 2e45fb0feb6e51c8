# -*- coding: utf-8 -*-
response.title = request.application.replace('_', ' ').title()
response.subtitle = 'TEST STAND-IN (not web2py)'
response.menu = [(T('Home'), False, URL('default', 'index'), [])]
