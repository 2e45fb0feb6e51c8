# -*- coding: utf-8 -*-
{
'!langcode!': 'en-us',
'!langname!': 'English (US)',
'A tiny example application': 'A tiny example application',
'A title is required': 'A title is required',
'Add note': 'Add note',
'API': 'API',
'Attachment': 'Attachment',
'Back': 'Back',
'Body': 'Body',
'Created on': 'Created on',
'No notes yet.': 'No notes yet.',
'Note added': 'Note added',
'Notes': 'Notes',
'RSS': 'RSS',
'The form expired, please try again': 'The form expired, please try again',
'Title': 'Title',
}
