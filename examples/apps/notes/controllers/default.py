# -*- coding: utf-8 -*-
import json
import uuid

from notes_util import VERSION, note_as_dict, rfc822, summarize


def index():
    """List the notes; a POST adds one (post/redirect/get)."""
    if request.env.request_method == 'POST':
        if not session.formkey or request.post_vars._formkey != session.formkey:
            session.flash = T('The form expired, please try again')
            redirect(URL('index'))
        upload = request.post_vars.attachment
        fields = dict(title=(request.post_vars.title or '').strip(),
                      body=request.post_vars.body or '')
        # pydal returns a Row in old versions and a dict in new ones: use [] for both
        result = db.note.validate_and_insert(**fields)
        if result['errors']:
            response.flash = T('A title is required')
        else:
            if upload is not None and getattr(upload, 'filename', None):
                stored = db.note.attachment.store(upload.file, upload.filename)
                db(db.note.id == result['id']).update(attachment=stored)
            session.flash = T('Note added')
            redirect(URL('index'))
    session.formkey = str(uuid.uuid4())
    notes = db(db.note).select(orderby=~db.note.created_on | ~db.note.id)
    return dict(notes=notes, formkey=session.formkey, summarize=summarize)


def show():
    note = db.note(request.args(0, cast=int)) or redirect(URL('index'))
    return dict(note=note, summarize=summarize)


def download():
    return response.download(request, db)


def api():
    """Rendered by views/generic.json when called as /notes/default/api.json."""
    session.forget(response)
    notes = db(db.note).select(orderby=db.note.id)
    return dict(app=request.application, version=VERSION, count=len(notes),
                notes=[note_as_dict(note) for note in notes])


def feed():
    session.forget(response)
    notes = db(db.note).select(orderby=~db.note.id, limitby=(0, 20))
    return dict(notes=notes, rfc822=rfc822, summarize=summarize)


def health():
    """Plain-text health check used by the deploys: also proves the database works."""
    session.forget(response)
    db.executesql('SELECT 1')
    response.headers['Content-Type'] = 'text/plain; charset=utf-8'
    return 'ok notes %s' % VERSION


def headers():
    """The names (not values) of the HTTP headers the request reached the app with: the deploy
    tests check that nginx keeps its own (the health check's key) to itself."""
    session.forget(response)
    response.headers['Content-Type'] = 'text/plain; charset=utf-8'
    return ' '.join(sorted(k[5:] for k in request.env if k.startswith('http_')))


def queue_task():
    """POST /notes/default/queue_task.json (label=..., seconds=...): queue the scheduler's `log`
    task (models/scheduler.py); answers its id. The worker runs it: web2py.py -K notes."""
    session.forget(response)
    if request.env.request_method != 'POST':
        raise HTTP(405, 'POST only', Allow='POST')
    if scheduler is None:
        raise HTTP(503, 'this web2py has no scheduler')
    label = (request.post_vars.label or 'log').strip()[:64] or 'log'
    try:
        seconds = min(max(float(request.post_vars.seconds or 0), 0), MAX_TASK_SECONDS)
    except ValueError:
        raise HTTP(400, 'seconds: a number')
    queued = scheduler.queue_task('log', pvars=dict(label=label, seconds=seconds),
                                  timeout=MAX_TASK_SECONDS + 30)
    if queued['errors']:
        raise HTTP(400, str(queued['errors']))
    return dict(id=queued['id'], label=label)


def tasks():
    """GET /notes/default/tasks.json: the rows tasks wrote (task_log) and, with a scheduler, its
    queue (each task's status and runs: which worker, how it ended) and its workers."""
    session.forget(response)
    rows = db(db.task_log).select(orderby=db.task_log.id)
    log = [dict(task=row.task, version=row.version,
                written_on=row.written_on.strftime('%Y-%m-%dT%H:%M:%S') if row.written_on else None)
           for row in rows]
    queue, workers = [], []
    if scheduler is not None:
        sdb = scheduler_db
        for task in sdb(sdb.scheduler_task).select(orderby=sdb.scheduler_task.id):
            runs = sdb(sdb.scheduler_run.task_id == task.id).select(orderby=sdb.scheduler_run.id)
            queue.append(dict(
                id=task.id, function=task.function_name, status=task.status,
                label=json.loads(task.vars or '{}').get('label'),
                runs=[dict(status=run.status, worker=run.worker_name) for run in runs],
            ))
        workers = [dict(name=w.worker_name, status=w.status)
                   for w in sdb(sdb.scheduler_worker).select(orderby=sdb.scheduler_worker.id)]
    return dict(version=VERSION, scheduler=scheduler is not None, log=log, queue=queue,
                workers=workers)
