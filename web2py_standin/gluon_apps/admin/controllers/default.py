# TEST DISTRIBUTION (pyinfra-web2py): the admin controller (login, apps, tickets, logout).
# ruff: noqa: F821
import os
import re

from gluon.restricted import RestrictedError


def index():
    """Login page: POST password (and optional send=<local url>)."""
    send = request.vars.send
    if isinstance(send, list):
        send = str(send[0])
    if not send or not send.startswith("/") or send.startswith("//"):
        send = URL("site")  # only local URLs: no open redirect
    if failed_login_count() >= allowed_number_of_attempts:
        raise HTTP(403)
    elif request.vars.password:
        if verify_password(request.vars.password[:1024]):
            session.authorized = True
            login_record(True)
            session.last_time = t0
            redirect(send)
        else:
            times_denied = login_record(False)
            if times_denied >= allowed_number_of_attempts:
                response.flash = T("admin disabled because too many invalid login attempts")
            elif times_denied == allowed_number_of_attempts - 1:
                response.flash = T("You have one more login attempt before you are locked out")
            else:
                response.flash = T("invalid password.")
    return dict(send=send)


def logout():
    session.authorized = None
    redirect(URL("index"))


def site():
    apps_folder = os.path.dirname(request.folder.rstrip(os.sep))
    apps = sorted(
        name
        for name in os.listdir(apps_folder)
        if os.path.isdir(os.path.join(apps_folder, name)) and not name.startswith((".", "__"))
    )
    return dict(apps=apps)


def ticket():
    app, ticket_id = request.args(0), request.args(1)
    if (
        not app
        or not ticket_id
        or not re.match(r"^\w+$", app)
        or not re.match(r"^[\w.\-]+$", ticket_id)
    ):
        raise HTTP(404)
    error = RestrictedError()
    error.load(request, app, ticket_id)  # gluon's TicketStorage: applications/<app>/errors/
    if error.traceback is None:
        raise HTTP(404, "ticket not found")
    return dict(app=app, ticket=ticket_id, layer=error.layer, traceback=error.traceback)
