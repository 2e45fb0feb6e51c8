# -*- coding: utf-8 -*-
# Background tasks with web2py's scheduler. The worker is `web2py.py -K notes`: on servers, the
# unit web2py-scheduler@notes (install_web2py with web2py_schedulers = ["notes"]). Pages queue
# tasks (default/queue_task.json, POST) and show what they wrote (default/tasks.json).
import datetime
import time

from notes_util import VERSION

try:
    from gluon.scheduler import Scheduler
except ImportError:  # a web2py without gluon.scheduler: the pages work without one
    Scheduler = None

db.define_table(
    'task_log',
    Field('task', 'string', length=64),
    Field('version', 'string', length=32),
    Field('written_on', 'datetime'),
)

MAX_TASK_SECONDS = 60


def log_task(label='log', seconds=0):
    """Sleep `seconds` (a slow task, at most MAX_TASK_SECONDS), then write one row: the label
    and the VERSION of the code that ran the task."""
    time.sleep(min(max(float(seconds), 0), MAX_TASK_SECONDS))
    # the time of writing (request.utcnow is when the task started)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    db.task_log.insert(task=label, version=VERSION, written_on=now)
    db.commit()
    return VERSION


# Models run on every request: the scheduler (its database, its four tables) only where it is
# used: the worker (-K) and its tasks (is_scheduler), web2py.py -S (is_shell: migrations, and
# the graceful stop that asks the worker to TERMINATE) and the two pages that use it.
if Scheduler is not None and (
    request.is_scheduler or request.is_shell
    or (request.controller == 'default' and request.function in ('queue_task', 'tasks'))
):
    # On SQLite the worker's heartbeat (every second) gets a database file of its own, so it never
    # holds the lock the pages write notes under; tasks run in a fresh interpreter (use_spawn)
    # rather than a fork of the worker, whose open SQLite connections a fork would inherit.
    scheduler_db = DAL('sqlite://scheduler.sqlite', pool_size=1)
    scheduler = Scheduler(scheduler_db, tasks=dict(log=log_task), heartbeat=1, use_spawn=True)
else:
    scheduler_db = scheduler = None
