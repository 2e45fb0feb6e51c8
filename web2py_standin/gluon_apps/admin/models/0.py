# TEST DISTRIBUTION (pyinfra-web2py): admin settings, named as in web2py's admin/models/0.py.
# ruff: noqa: F821
EXPIRATION = 60 * 60  # seconds a login stays valid without activity
DEMO_MODE = False  # True: no login needed (web2py's read-only demo); never on a server
MULTI_USER_MODE = False
