# -*- coding: utf-8 -*-
# TEST STAND-IN (not web2py): welcome app controller.


def index():
    response.flash = T("Hello World")
    return dict(message=T('Welcome to web2py!'))
