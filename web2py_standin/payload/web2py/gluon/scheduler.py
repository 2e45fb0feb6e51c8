"""TEST STAND-IN (not web2py): a small scheduler with the tables and the behaviour of
web2py's gluon.scheduler at the boundaries deploys and apps touch.

In an app's models::

    from gluon.scheduler import Scheduler
    scheduler = Scheduler(db, tasks=dict(log=log_task), heartbeat=1)
    scheduler.queue_task('log', pvars=dict(label='x'))   # -> Storage(id=, errors=, uuid=, ...)

and ``python web2py.py -K APP`` runs a worker (``current._scheduler.loop()``, as web2py):

* the same four tables as web2py 2.26.1 (``scheduler_task``, ``scheduler_run``,
  ``scheduler_worker``, ``scheduler_task_deps``), same columns and types;
* the worker registers as ``<hostname>#<pid>`` in ``scheduler_worker`` and writes a heartbeat
  every ``heartbeat`` seconds; it honours the row's status: TERMINATE (finish the running task,
  then exit 0), KILL (stop the running task, exit 0), DISABLED (pause), STOP_TASK (stop the
  running task, go on);
* it runs one task at a time, each in a fresh Python process that runs the app's models
  (``request.is_scheduler``) from what is on disk at that moment, as web2py does with
  ``use_spawn=True``; run records, statuses, repeats, retries and timeouts as in web2py;
* SIGTERM (or SIGINT) while idle: exit 0 at once; while a task runs: that task is stopped
  (run STOPPED, task FAILED) and the worker goes on, as web2py 2.26.1's worker does.

Simpler than web2py: one worker runs what it finds (no ticker assigning tasks, no task
dependencies, no broadcast, no cronline, no sync_output), all in one thread.
"""

import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import uuid

from pydal.base import DEFAULT

from gluon.dal import DAL, Field, Query  # noqa: F401
from gluon.globals import current
from gluon.storage import Storage
from gluon.validators import (IS_DATETIME, IS_IN_DB, IS_IN_SET, IS_INT_IN_RANGE, IS_NOT_EMPTY,
                              IS_NOT_IN_DB)

__all__ = ['Scheduler']

IDENTIFIER = '%s#%s' % (socket.gethostname(), os.getpid())

QUEUED = 'QUEUED'
ASSIGNED = 'ASSIGNED'
RUNNING = 'RUNNING'
COMPLETED = 'COMPLETED'
FAILED = 'FAILED'
TIMEOUT = 'TIMEOUT'
STOPPED = 'STOPPED'
ACTIVE = 'ACTIVE'
TERMINATE = 'TERMINATE'
DISABLED = 'DISABLED'
KILL = 'KILL'
PICK = 'PICK'
STOP_TASK = 'STOP_TASK'
EXPIRED = 'EXPIRED'
SECONDS = 1
HEARTBEAT = 3 * SECONDS
MAXHIBERNATION = 10

TASK_STATUS = (QUEUED, RUNNING, COMPLETED, FAILED, TIMEOUT, STOPPED, EXPIRED)
RUN_STATUS = (RUNNING, COMPLETED, FAILED, TIMEOUT, STOPPED)
WORKER_STATUS = (ACTIVE, PICK, DISABLED, TERMINATE, KILL, STOP_TASK)
POLL = 0.1  # seconds between looks at a running task, a signal, the clock


def web2py_uuid():
    return str(uuid.uuid4())


def log(message):
    sys.stderr.write('scheduler %s: %s\n' % (IDENTIFIER, message))
    sys.stderr.flush()


def try_rollback(db):
    try:
        db.rollback()
        return True
    except Exception:
        return False


class TYPE(object):
    """Validator of the JSON in scheduler_task.args (a list) and .vars (a dict), as web2py's."""

    def __init__(self, myclass=list, parse=False):
        self.myclass = myclass
        self.parse = parse

    def __call__(self, value, record_id=None):
        T = getattr(current, 'T', None) or str
        try:
            obj = json.loads(value)
        except (TypeError, ValueError):
            return (value, T('invalid json'))
        if isinstance(obj, self.myclass):
            return (obj if self.parse else value, None)
        return (value, T('Not of type: %s') % self.myclass)


class NO_CRONLINE(object):
    """The stand-in has no cron parser: any cronline is refused (web2py: IS_CRONLINE)."""

    def __call__(self, value, record_id=None):
        if value in (None, ''):
            return (value, None)
        return (value, 'cronline: not implemented by this TEST STAND-IN')


class Task(object):
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


class TaskReport(object):
    def __init__(self, status, result=None, output=None, tb=None):
        self.status, self.result, self.output, self.tb = status, result, output, tb


class Scheduler(object):
    """The stand-in's Scheduler: web2py's constructor arguments and tables; ``loop()`` is the
    worker (``web2py.py -K APP``). ``use_spawn`` is accepted and ignored: every task runs in a
    fresh Python process."""

    def __init__(self, db, tasks=None, migrate=True, worker_name=None, group_names=None,
                 heartbeat=HEARTBEAT, max_empty_runs=0, discard_results=False, utc_time=False,
                 use_spawn=False):
        self.db = db
        self.tasks = tasks
        self.group_names = group_names or ['main']
        self.heartbeat = heartbeat
        self.worker_name = worker_name or IDENTIFIER
        self.max_empty_runs = max_empty_runs
        self.discard_results = discard_results
        self.utc_time = utc_time
        self.use_spawn = use_spawn
        self.process = None
        self.have_heartbeat = True
        self.is_a_ticker = False
        self.w_stats = Storage(status=RUNNING, sleep=heartbeat, total=0, errors=0,
                               empty_runs=0, queue=0, distribution=None, workers=0)
        self._signalled = False
        self._disabled = False
        current._scheduler = self
        self.define_tables(db, migrate=migrate)

    # --- tables (as web2py 2.26.1) ------------------------------------------------------------

    def now(self):
        if self.utc_time:
            return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        return datetime.datetime.now()

    def define_tables(self, db, migrate):
        request = getattr(current, 'request', None)
        application_name = None
        if request is not None and request.application:
            application_name = '%s/%s' % (request.application, request.controller)
        now = self.now

        def mig(tablename):
            if isinstance(migrate, str):
                return '%s%s.table' % (migrate, tablename)
            return bool(migrate)

        db.define_table(
            'scheduler_task',
            Field('application_name', requires=IS_NOT_EMPTY(), default=application_name,
                  writable=False),
            Field('task_name', default=None),
            Field('group_name', default='main'),
            Field('status', requires=IS_IN_SET(TASK_STATUS), default=QUEUED, writable=False),
            Field('broadcast', 'boolean', default=False),
            Field('function_name',
                  requires=IS_IN_SET(sorted(self.tasks.keys())) if self.tasks else DEFAULT),
            Field('uuid', length=255, requires=IS_NOT_IN_DB(db, 'scheduler_task.uuid'),
                  unique=True, default=web2py_uuid),
            Field('args', 'text', default='[]', requires=TYPE(list)),
            Field('vars', 'text', default='{}', requires=TYPE(dict)),
            Field('enabled', 'boolean', default=True),
            Field('start_time', 'datetime', default=now, requires=IS_DATETIME()),
            Field('next_run_time', 'datetime', default=now),
            Field('stop_time', 'datetime'),
            Field('repeats', 'integer', default=1, comment='0=unlimited',
                  requires=IS_INT_IN_RANGE(0, None)),
            Field('retry_failed', 'integer', default=0, comment='-1=unlimited',
                  requires=IS_INT_IN_RANGE(-1, None)),
            Field('period', 'integer', default=60, comment='seconds',
                  requires=IS_INT_IN_RANGE(0, None)),
            Field('prevent_drift', 'boolean', default=False,
                  comment='Exact start_times between runs'),
            Field('cronline', default=None, comment='Discard "period", use this cron expr instead',
                  requires=NO_CRONLINE()),
            Field('timeout', 'integer', default=60, comment='seconds',
                  requires=IS_INT_IN_RANGE(1, None)),
            Field('sync_output', 'integer', default=0,
                  comment='update output every n sec: 0=never',
                  requires=IS_INT_IN_RANGE(0, None)),
            Field('times_run', 'integer', default=0, writable=False),
            Field('times_failed', 'integer', default=0, writable=False),
            Field('last_run_time', 'datetime', writable=False, readable=False),
            Field('assigned_worker_name', default='', writable=False),
            migrate=mig('scheduler_task'),
            format='(%(id)s) %(task_name)s',
        )
        db.define_table(
            'scheduler_run',
            Field('task_id', 'reference scheduler_task'),
            Field('status', requires=IS_IN_SET(RUN_STATUS)),
            Field('start_time', 'datetime'),
            Field('stop_time', 'datetime'),
            Field('run_output', 'text'),
            Field('run_result', 'text'),
            Field('traceback', 'text'),
            Field('worker_name', default=self.worker_name),
            migrate=mig('scheduler_run'),
        )
        db.define_table(
            'scheduler_worker',
            Field('worker_name', length=255, unique=True),
            Field('first_heartbeat', 'datetime'),
            Field('last_heartbeat', 'datetime'),
            Field('status', requires=IS_IN_SET(WORKER_STATUS)),
            Field('is_ticker', 'boolean', default=False, writable=False),
            Field('group_names', 'list:string', default=self.group_names),
            Field('worker_stats', 'json'),
            migrate=mig('scheduler_worker'),
        )
        db.define_table(
            'scheduler_task_deps',
            Field('job_name', default='job_0'),
            Field('task_parent', 'integer',
                  requires=IS_IN_DB(db, 'scheduler_task.id', '%(task_name)s')),
            Field('task_child', 'reference scheduler_task'),
            Field('can_visit', 'boolean', default=False),
            migrate=mig('scheduler_task_deps'),
        )
        if migrate is not False:
            db.commit()

    # --- the API apps use -----------------------------------------------------------------------

    def queue_task(self, function, pargs=[], pvars={}, **kwargs):
        """As web2py: validate and insert a scheduler_task row. Returns a Storage with ``id``,
        ``errors`` (empty when it was queued), ``success`` and ``uuid`` (None on errors)."""
        if hasattr(function, '__name__'):
            function = function.__name__
        targs = kwargs.pop('args', None) or json.dumps(pargs)
        tvars = kwargs.pop('vars', None) or json.dumps(pvars)
        tuuid = kwargs.pop('uuid', None) or web2py_uuid()
        tname = kwargs.pop('task_name', None) or function
        immediate = kwargs.pop('immediate', None)
        kwargs.update(function_name=function, task_name=tname, args=targs, vars=tvars,
                      uuid=tuuid)
        if 'start_time' in kwargs and 'next_run_time' not in kwargs:
            kwargs.update(next_run_time=kwargs['start_time'])
        db = self.db
        rtn = Storage(db.scheduler_task.validate_and_insert(**kwargs))
        if not rtn.errors:
            rtn.uuid = tuuid
            if immediate:
                db(db.scheduler_worker.is_ticker == True).update(status=PICK)  # noqa: E712
        else:
            rtn.uuid = None
        return rtn

    def task_status(self, ref, output=False):
        """The last task matching ``ref`` (id, uuid or Query); with ``output``, its last run
        too (``row.scheduler_run``, ``row.result``), as web2py."""
        db = self.db
        st, sr = db.scheduler_task, db.scheduler_run
        if isinstance(ref, int):
            q = st.id == ref
        elif isinstance(ref, str):
            q = st.uuid == ref
        elif isinstance(ref, Query):
            q = ref
        else:
            raise SyntaxError('You can retrieve results only by id, uuid or Query')
        if not output:
            return db(q).select(orderby=~st.id, limitby=(0, 1)).first()
        row = db(q).select(st.ALL, sr.ALL, left=sr.on(sr.task_id == st.id),
                           orderby=~st.id | ~sr.id, limitby=(0, 1)).first()
        if row:
            result = row.scheduler_run.run_result
            row.result = json.loads(result) if result else None
        return row

    def stop_task(self, ref):
        """RUNNING: ask its worker to stop it (STOP_TASK); QUEUED: STOPPED and disabled."""
        db = self.db
        st, sw = db.scheduler_task, db.scheduler_worker
        if isinstance(ref, int):
            q = st.id == ref
        elif isinstance(ref, str):
            q = st.uuid == ref
        else:
            raise SyntaxError('You can retrieve results only by id or uuid')
        task = db(q).select(st.id, st.status, st.assigned_worker_name).first()
        if not task:
            return None
        if task.status == RUNNING:
            return db(sw.worker_name == task.assigned_worker_name).update(status=STOP_TASK)
        if task.status == QUEUED:
            return db(q).update(stop_time=self.now(), enabled=False, status=STOPPED)
        return None

    def set_worker_status(self, group_names=None, action=ACTIVE, exclude=None, limit=None,
                          worker_name=None):
        db = self.db
        ws = db.scheduler_worker
        if not group_names:
            group_names = self.group_names
        elif isinstance(group_names, str):
            group_names = [group_names]
        if worker_name:
            db(ws.worker_name == worker_name).update(status=action)
            return
        exclusion = (exclude or []) + [action]
        for group in group_names:
            query = ws.group_names.contains(group) & ~ws.status.belongs(exclusion)
            if limit:
                query = ws.id.belongs(db(query)._select(ws.id, limitby=(0, limit)))
            db(query).update(status=action)

    # as in web2py 2.26.1, these act on every worker of the groups: worker_name is ignored
    def disable(self, group_names=None, limit=None, worker_name=None):
        self.set_worker_status(group_names, DISABLED, [DISABLED, KILL, TERMINATE], limit)

    def resume(self, group_names=None, limit=None, worker_name=None):
        self.set_worker_status(group_names, ACTIVE, [KILL, TERMINATE], limit)

    def terminate(self, group_names=None, limit=None, worker_name=None):
        self.set_worker_status(group_names, TERMINATE, [KILL], limit)

    def kill(self, group_names=None, limit=None, worker_name=None):
        self.set_worker_status(group_names, KILL, None, limit)

    def get_workers(self, only_ticker=False):
        db = self.db
        sw = db.scheduler_worker
        query = (sw.is_ticker == True) if only_ticker else (sw.id > 0)  # noqa: E712
        return dict((row.worker_name, Storage(
            status=row.status, first_heartbeat=row.first_heartbeat,
            last_heartbeat=row.last_heartbeat, group_names=row.group_names,
            is_ticker=row.is_ticker, worker_stats=row.worker_stats))
            for row in db(query).select())

    # --- the worker (web2py.py -K APP) ----------------------------------------------------------

    def die(self):
        log('die!')
        self.have_heartbeat = False
        self.terminate_process()

    def give_up(self):
        log('giving up as soon as possible (after the running task, if any)')
        self.have_heartbeat = False

    def _on_signal(self, signum, frame):
        self._signalled = True

    def _retry(self, what, function, tries=10):
        for attempt in range(tries):
            try:
                result = function()
                self.db.commit()
                return result
            except Exception:
                log('error %s:\n%s' % (what, traceback.format_exc()))
                self.w_stats.errors += 1
                try_rollback(self.db)
                if attempt + 1 < tries:
                    time.sleep(0.5)
        return None

    def loop(self, worker_name=None):
        """Run tasks until told to stop: the worker's row says TERMINATE or KILL, a signal
        arrives while idle, or max_empty_runs is reached. Returns normally (exit status 0)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        log('started (groups %s, heartbeat %ss)' % (','.join(self.group_names), self.heartbeat))
        counter = 0
        next_heartbeat = 0.0
        try:
            while self.have_heartbeat and not self._signalled:
                if time.monotonic() >= next_heartbeat:
                    self.send_heartbeat(counter)
                    counter += 1
                    next_heartbeat = time.monotonic() + self.w_stats.sleep
                    continue
                if self._disabled:
                    self._idle(next_heartbeat)
                    continue
                task = self._retry('popping a task', self.pop_task)
                if task and self._signalled:  # signalled while idle: leave the task queued
                    self._retry('releasing a task', lambda: self.release_task(task))
                    break
                if task:
                    self.w_stats.update(empty_runs=0, status=RUNNING)
                    self.w_stats.total += 1
                    report = self.execute(task)
                    self._retry('storing a result', lambda: self.report_task(task, report), 1000)
                    if self.w_stats.status == RUNNING:
                        self.w_stats.status = ACTIVE
                    continue
                self.w_stats.empty_runs += 1
                if self.max_empty_runs and self.w_stats.empty_runs >= self.max_empty_runs:
                    log('empty runs limit reached, killing myself')
                    self.die()
                    break
                self._idle(time.monotonic() + self.heartbeat)
        finally:
            self.terminate_process()
        log('stopped (%s)' % ('signal' if self._signalled else self.w_stats.status))

    def _idle(self, until):
        while time.monotonic() < until and not self._signalled:
            time.sleep(POLL)

    def send_heartbeat(self, counter):
        """Record the heartbeat in scheduler_worker and obey the row's status; every 5
        heartbeats, free the tasks of dead workers (as web2py's heartbeat does)."""
        db = self.db
        sw, st = db.scheduler_worker, db.scheduler_task
        now = self.now()
        try:
            row = db(sw.worker_name == self.worker_name).select().first()
            status = row.status if row else None
            if row is None:
                self._disabled = False
                self.w_stats.status = RUNNING if self.process else ACTIVE
                sw.insert(status=ACTIVE, worker_name=self.worker_name, first_heartbeat=now,
                          last_heartbeat=now, group_names=self.group_names,
                          worker_stats=dict(self.w_stats))
            elif status == DISABLED:
                self._disabled = True
                self.w_stats.status = DISABLED
                db(sw.id == row.id).update(last_heartbeat=now, worker_stats=dict(self.w_stats))
                self.w_stats.sleep = min(self.w_stats.sleep + HEARTBEAT, MAXHIBERNATION)
            elif status == TERMINATE:
                self.w_stats.status = TERMINATE
                self.give_up()
            elif status == KILL:
                self.w_stats.status = KILL
                self.die()
            else:
                if status == STOP_TASK:
                    log('asked to stop the running task')
                    self.terminate_process()
                self._disabled = False
                self.w_stats.sleep = self.heartbeat
                self.w_stats.status = RUNNING if self.process else ACTIVE
                # only over the statuses a heartbeat may reset: a TERMINATE (or KILL, ...)
                # written since the select above is kept, and seen at the next heartbeat
                db((sw.id == row.id) & sw.status.belongs((ACTIVE, PICK, STOP_TASK))).update(
                    last_heartbeat=now, status=ACTIVE, worker_stats=dict(self.w_stats))
            if counter % 5 == 0 and self.have_heartbeat:
                expiration = now - datetime.timedelta(seconds=self.heartbeat * 3)
                departure = now - datetime.timedelta(seconds=self.heartbeat * 3 * 15)
                dead = db(((sw.last_heartbeat < expiration) & (sw.status == ACTIVE))
                          | ((sw.last_heartbeat < departure) & (sw.status != ACTIVE)))
                names = [r.worker_name for r in dead.select(sw.worker_name)]
                if names:
                    db(st.assigned_worker_name.belongs(names) & (st.status == RUNNING)).update(
                        assigned_worker_name='', status=QUEUED)
                    dead.delete()
                others = db((sw.worker_name != self.worker_name) & (sw.status == ACTIVE)
                            & (sw.is_ticker == True)).count()  # noqa: E712
                self.is_a_ticker = not others
                if self.is_a_ticker:
                    db(sw.worker_name == self.worker_name).update(is_ticker=True)
                    db(sw.worker_name != self.worker_name).update(is_ticker=False)
            db.commit()
        except Exception:
            log('error recording the heartbeat:\n%s' % traceback.format_exc())
            try_rollback(db)

    def pop_task(self):
        """Claim the next runnable task of my groups: RUNNING, assigned to me, a scheduler_run
        row RUNNING (unless discard_results)."""
        now = self.now()
        db = self.db
        st = db.scheduler_task
        waiting = st.status.belongs((QUEUED, ASSIGNED))
        db(waiting & (st.stop_time < now)).update(status=EXPIRED)
        runnable = (waiting & (st.enabled == True) & (st.next_run_time <= now)  # noqa: E712
                    & st.group_name.belongs(self.group_names))
        task = None
        for row in db(runnable).select(orderby=st.next_run_time | st.id, limitby=(0, 10)):
            if db((st.id == row.id) & waiting).update(
                    status=RUNNING, assigned_worker_name=self.worker_name, last_run_time=now):
                task = row
                break
        if task is None:
            db.commit()
            return None
        if task.cronline:
            next_run_time = now  # never: the stand-in refuses cronlines (NO_CRONLINE)
        elif not task.prevent_drift or not task.period:
            next_run_time = now + datetime.timedelta(seconds=task.period or 0)
        else:
            times = (now - task.start_time).total_seconds() // task.period + 1
            next_run_time = task.start_time + datetime.timedelta(seconds=task.period * times)
        times_run = task.times_run + 1
        run_id = 0
        if not self.discard_results:
            run_id = db.scheduler_run.insert(task_id=task.id, status=RUNNING, start_time=now,
                                             worker_name=self.worker_name)
        db.commit()
        log('new task %s "%s" %s.%s' % (task.id, task.task_name, task.application_name,
                                         task.function_name))
        return Task(app=task.application_name, function=task.function_name,
                    timeout=task.timeout, args=task.args, vars=task.vars, task_id=task.id,
                    run_id=run_id, run_again=times_run < task.repeats or task.repeats == 0,
                    next_run_time=next_run_time, times_run=times_run,
                    stop_time=task.stop_time, retry_failed=task.retry_failed,
                    times_failed=task.times_failed, uuid=task.uuid)

    def release_task(self, task):
        """Undo pop_task for a task that was not started."""
        db = self.db
        db(db.scheduler_task.id == task.task_id).update(status=QUEUED, assigned_worker_name='')
        if task.run_id:
            db(db.scheduler_run.id == task.run_id).delete()

    def execute(self, task):
        """Run the task in a fresh Python process (the app's models as on disk now); watch it,
        the heartbeat, signals and the timeout. Returns a TaskReport."""
        fd, report_file = tempfile.mkstemp(prefix='w2p_task_', suffix='.json')
        os.close(fd)
        output = tempfile.TemporaryFile()
        spec = dict(app=task.app, function=task.function, args=task.args, vars=task.vars,
                    task_id=task.task_id, run_id=task.run_id, uuid=task.uuid,
                    report=report_file)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        started = time.monotonic()
        stopped = None
        try:
            self.process = subprocess.Popen(
                [sys.executable, '-c', 'import gluon.scheduler as s; s.executor_main()',
                 json.dumps(spec)],
                cwd=root, stdin=subprocess.DEVNULL, stdout=output)
            next_heartbeat = started + self.w_stats.sleep
            while self.process is not None and self.process.poll() is None:
                time.sleep(POLL)
                if self._signalled:  # as web2py: a signal stops the task, not the worker
                    log('signal: stopping the running task')
                    self._signalled = False
                    self.terminate_process()
                    stopped = STOPPED
                elif task.timeout and time.monotonic() - started >= task.timeout:
                    log('task timeout')
                    self.terminate_process()
                    stopped = TIMEOUT
                elif time.monotonic() >= next_heartbeat:
                    self.send_heartbeat(1)  # KILL and STOP_TASK end the process here
                    next_heartbeat = time.monotonic() + self.w_stats.sleep
        finally:
            self.terminate_process()
            output.seek(0)
            task_output = output.read().decode('utf8', 'replace')
            output.close()
            try:
                with open(report_file) as f:
                    report = json.load(f)
            except (OSError, ValueError):
                report = None
            try:
                os.unlink(report_file)
            except OSError:
                pass
        if stopped == TIMEOUT:
            return TaskReport(TIMEOUT, output=task_output)
        if stopped or not report:
            return TaskReport(STOPPED, output=task_output)
        return TaskReport(report['status'], result=report.get('result'), output=task_output,
                          tb=report.get('tb'))

    def terminate_process(self):
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def report_task(self, task, task_report):
        """Store the run and the task's new status, as web2py (a run without a result or a
        traceback, i.e. a function that returned None, is deleted)."""
        now = self.now()
        db = self.db
        st, sr = db.scheduler_task, db.scheduler_run
        if not self.discard_results:
            if task_report.result != 'null' or task_report.tb:
                db(sr.id == task.run_id).update(
                    status=task_report.status, stop_time=now, run_result=task_report.result,
                    run_output=task_report.output, traceback=task_report.tb)
            else:
                db(sr.id == task.run_id).delete()
        is_expired = bool(task.stop_time and task.next_run_time > task.stop_time)
        if task_report.status == COMPLETED:
            if task.run_again:
                status = EXPIRED if is_expired else QUEUED
            else:
                status = COMPLETED
            db(st.id == task.task_id).update(status=status, next_run_time=task.next_run_time,
                                             times_run=task.times_run, times_failed=0)
        else:
            mapped = {FAILED: FAILED, TIMEOUT: TIMEOUT, STOPPED: FAILED}[task_report.status]
            retry = task.retry_failed == -1 or (
                task.retry_failed and task.times_failed < task.retry_failed)
            db(st.id == task.task_id).update(times_failed=st.times_failed + 1,
                                             next_run_time=task.next_run_time,
                                             status=QUEUED if retry else mapped)
        log('task %s %s' % (task.task_id, task_report.status))


def executor_main():
    """In the task's own process (cwd: the web2py root): run the app's models as web2py's
    scheduler does (request.is_scheduler), call the task's function, write the report."""
    spec = json.loads(sys.argv[1])
    report = {}
    try:
        from gluon.custom_import import custom_import_install
        from gluon.shell import env
        custom_import_install()
        a, _, c = spec['app'].partition('/')
        environment = env(a, import_models=True, c=c.partition('/')[0] or 'default',
                          is_shell=False, extra_request={'is_scheduler': True})
        scheduler = getattr(current, '_scheduler', None)
        functions = getattr(scheduler, 'tasks', None)
        function = (functions or environment).get(spec['function'])
        if not callable(function):
            raise NameError("name '%s' not found in scheduler's environment" % spec['function'])
        w2p_task = Storage(id=spec['task_id'], uuid=spec['uuid'], run_id=spec['run_id'])
        environment['W2P_TASK'] = current.W2P_TASK = w2p_task
        result = function(*json.loads(spec['args']), **json.loads(spec['vars']))
        report = dict(status=COMPLETED, result=json.dumps(result))
    except BaseException:
        report = dict(status=FAILED, tb=traceback.format_exc())
    finally:
        sys.stdout.flush()
        with open(spec['report'], 'w') as f:
            json.dump(report, f)
