# -*- coding: utf-8 -*-
import os


def index():
    """The scaffold's welcome page, with what the configuration says."""
    return dict(name=configuration.get('app.name'),
                environment=configuration.get('app.environment'),
                production=configuration.get('app.production'),
                products=db(db.product).count())


def config():
    """Non-secret configuration values, for the deploy tests (never the database password)."""
    session.forget(response)
    response.headers['Content-Type'] = 'text/plain; charset=utf-8'
    uri = configuration.get('db.uri') or ''
    return 'environment=%s production=%s db_scheme=%s smtp_sender=%s' % (
        configuration.get('app.environment'), configuration.get('app.production'),
        uri.split(':', 1)[0], configuration.get('smtp.sender'))


def register():
    """POST email+password: a user, stored with web2py's own password hash (keyed by auth.key)."""
    session.forget(response)
    email, password = request.post_vars.email, request.post_vars.password
    if request.env.request_method != 'POST' or not email or not password:
        raise HTTP(400, 'POST email and password')
    result = db.auth_user.validate_and_insert(email=email, password=password,
                                              first_name='x', last_name='y')
    if result['errors']:
        raise HTTP(400, repr(result['errors']))
    response.headers['Content-Type'] = 'text/plain; charset=utf-8'
    return str(db.auth_user(result['id']).password)


def verify():
    """POST a password and a stored hash (from any host): does the password match here?"""
    session.forget(response)
    stored, password = request.post_vars.hash, request.post_vars.password
    if not stored or not password:
        raise HTTP(400, 'POST password and hash')
    checked, error = db.auth_user.password.validate(password)
    response.headers['Content-Type'] = 'text/plain; charset=utf-8'
    return 'match' if not error and checked == stored else 'mismatch'


def health():
    session.forget(response)
    db.executesql('SELECT 1')
    response.headers['Content-Type'] = 'text/plain; charset=utf-8'
    key = os.path.join(request.folder, 'private', 'auth.key')
    return 'ok shop %s key=%s' % (configuration.get('app.environment'), os.path.exists(key))


def user():
    return dict(form=auth())


def client():
    """Who web2py thinks the client is, and whether over HTTPS (nginx's values, never the
    client's own X-Forwarded-* headers)."""
    session.forget(response)
    response.headers['Content-Type'] = 'text/plain; charset=utf-8'
    return 'client=%s https=%s' % (request.client, request.is_https)
