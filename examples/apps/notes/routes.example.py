# -*- coding: utf-8 -*-
# App-specific routes example (web2py's routes_app mechanism). Not used by default.
# To make "notes" the default application, the web2py root's routes.py would say:
#
#   default_application = 'notes'
#
# The app itself builds every URL with URL(), so it works with or without routes.
