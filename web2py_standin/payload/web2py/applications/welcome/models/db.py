# -*- coding: utf-8 -*-
# TEST STAND-IN (not web2py): welcome app model.

# As in web2py's welcome app: the folder defaults to applications/welcome/databases
db = DAL('sqlite://storage.sqlite')

# by default give a view/generic.extension to all actions from localhost
# none otherwise. a pattern can be 'controller/function.extension'
response.generic_patterns = ['*'] if request.is_local else []
