# TEST DISTRIBUTION (pyinfra-web2py): the welcome app's controller.
# ruff: noqa: F821


def index():
    response.flash = T("Hello World")
    return dict(message=T("Welcome to web2py!"))


def user():
    """Auth's pages: /user/login, /user/register, /user/logout, /user/profile..."""
    return dict(form=auth())


@cache.action()
def download():
    """Files of upload fields: /download/<name>."""
    return response.download(request, db)
