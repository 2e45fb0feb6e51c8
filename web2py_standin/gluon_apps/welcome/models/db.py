# TEST DISTRIBUTION (pyinfra-web2py): the welcome app's model, shaped like web2py's scaffolding
# model. request, response, DAL... are web2py's globals, given to every model by gluon.
# ruff: noqa: F821
from gluon.contrib.appconfig import AppConfig
from gluon.tools import Auth

# reload=False: read once per process and cached, as web2py advises for production
configuration = AppConfig(reload=False)

db = DAL(
    configuration.get("db.uri"),
    pool_size=configuration.get("db.pool_size"),
    migrate_enabled=configuration.get("db.migrate"),
    check_reserved=["all"],
)

# generic views (e.g. default/index.json) only for local clients, and never in production
response.generic_patterns = []
if request.is_local and not configuration.get("app.production"):
    response.generic_patterns.append("*")

response.formstyle = configuration.get("forms.formstyle")
response.form_label_separator = configuration.get("forms.separator") or ""

auth = Auth(db, host_names=configuration.get("host.names"))
auth.define_tables(username=False, signature=False)

mail = auth.settings.mailer
mail.settings.server = configuration.get("smtp.server")
mail.settings.sender = configuration.get("smtp.sender")
mail.settings.login = configuration.get("smtp.login")
mail.settings.tls = configuration.get("smtp.tls") or False
mail.settings.ssl = configuration.get("smtp.ssl") or False

auth.settings.registration_requires_verification = False
auth.settings.registration_requires_approval = False
auth.settings.reset_password_requires_verification = True
