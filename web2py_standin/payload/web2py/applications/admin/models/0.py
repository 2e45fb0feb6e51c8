# -*- coding: utf-8 -*-
# TEST STAND-IN (not web2py): admin settings
EXPIRATION = 60 * 60  # seconds a login stays valid without activity
DEMO_MODE = False
MULTI_USER_MODE = False
