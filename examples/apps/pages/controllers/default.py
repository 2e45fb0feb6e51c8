# -*- coding: utf-8 -*-


def index():
    return dict(title='Pages', text=get_content('index', request.vars.lang or 'en'))


def what():
    return dict(title='What', text=get_content('what', request.vars.lang or 'en'))


def documentation():
    return dict(title='Documentation', text=get_content('documentation', request.vars.lang or 'en'))
