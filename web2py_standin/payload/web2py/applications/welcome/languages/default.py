# -*- coding: utf-8 -*-
{
'!langcode!': 'en-us',
'!langname!': 'English (US)',
'Hello World': 'Hello World',
'Home': 'Home',
'Welcome to web2py!': 'Welcome to web2py!',
}
