# -*- coding: utf-8 -*-
# As in web2py's welcome scaffold: configuration from private/appconfig.ini, a DAL, Auth.
from gluon.contrib.appconfig import AppConfig

# once in production, AppConfig caches the file (reload=False), as the scaffold advises
configuration = AppConfig(reload=False)

db = DAL(configuration.get('db.uri'),
         pool_size=configuration.get('db.pool_size'),
         migrate_enabled=configuration.get('db.migrate'),
         check_reserved=['all'])

response.generic_patterns = []
if request.is_local and not configuration.get('app.production'):
    response.generic_patterns.append('*')

# Apps made from web2py's older scaffolds key their password hashes with a per-app key that
# web2py writes to private/auth.key on the first request (Auth.get_or_create_key()).
from gluon.tools import Auth
auth = Auth(db, hmac_key=Auth.get_or_create_key(), host_names=configuration.get('host.names'))
auth.settings.registration_requires_verification = False
auth.define_tables(username=False, signature=False)

db.define_table('product',
                Field('name', 'string', length=100, requires=IS_NOT_EMPTY()),
                Field('price', 'double', default=0))
