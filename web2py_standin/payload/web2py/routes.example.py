# TEST STAND-IN (not web2py): example routes file.
#
# Copy to routes.py in the web2py root to change the defaults used for "/".
# The stand-in only understands these three simple settings (the
# pattern-based router without routes_in/routes_out); real web2py also
# supports routes_in/routes_out and the parametric `routers` dict, which
# the stand-in refuses with an error rather than half-implementing them.

default_application = 'init'   # "/" serves this app (falls back to welcome)
default_controller = 'default'
default_function = 'index'
