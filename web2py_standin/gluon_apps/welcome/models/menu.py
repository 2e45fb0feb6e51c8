# TEST DISTRIBUTION (pyinfra-web2py): the welcome app's menu.
# ruff: noqa: F821
response.title = configuration.get("app.name")
response.subtitle = "TEST DISTRIBUTION: web2py's gluon from PyPI"
response.menu = [(T("Home"), False, URL("default", "index"), [])]
