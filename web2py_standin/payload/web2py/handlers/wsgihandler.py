#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""
TEST STAND-IN (not web2py): WSGI handler.

Like web2py's handlers/wsgihandler.py, this file is meant to be copied to the
web2py root folder and loaded from there, e.g. by uWSGI with
``chdir=<web2py root>`` and ``module=wsgihandler:application``.
"""

import os
import sys

path = os.path.dirname(os.path.abspath(__file__))
os.chdir(path)

if not os.path.isdir('applications'):
    raise RuntimeError('Running from the wrong folder')

sys.path = [path] + [p for p in sys.path if not p == path]

import gluon.main  # noqa: E402

application = gluon.main.wsgibase
