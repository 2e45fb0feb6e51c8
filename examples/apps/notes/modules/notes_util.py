# -*- coding: utf-8 -*-
"""Helpers for the notes application (imported by the controller as `notes_util`)."""

VERSION = '1.0.0'
__version__ = VERSION


def summarize(text, length=80):
    """First `length` characters of text on one line, with an ellipsis if cut."""
    text = ' '.join((text or '').split())
    if len(text) <= length:
        return text
    return text[:length - 1].rstrip() + u'\u2026'


def note_as_dict(row):
    """A JSON-friendly dict for a note row."""
    return {
        'id': row.id,
        'title': row.title,
        'body': row.body or '',
        'created_on': row.created_on.strftime('%Y-%m-%dT%H:%M:%S') if row.created_on else None,
        'has_attachment': bool(row.attachment),
    }


def rfc822(dt):
    """RFC 822 date for RSS (request.now is server local time, assumed to be UTC)."""
    return dt.strftime('%a, %d %b %Y %H:%M:%S') + ' +0000' if dt else ''
