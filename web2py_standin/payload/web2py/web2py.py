#!/usr/bin/env python3
"""TEST STAND-IN (not web2py): a tiny web2py.py.

Supported:
  python web2py.py --version
  python web2py.py -S APP [-M] -R SCRIPT [-A ARG ...]
      run SCRIPT (a path relative to the web2py root, as in web2py) in APP's
      environment, after its models with -M; commit afterwards.
  python web2py.py -K APP[:GROUP...]
      run APP's scheduler worker (its models must define a gluon.scheduler.Scheduler):
      one worker, until its scheduler_worker row says TERMINATE or KILL, or a signal
      arrives while it is idle; exit status 0 (1 for an unknown app or a failing model).
Everything else (the built-in web server, -X, several -K apps, ...) is refused.
"""

import argparse
import os
import sys

path = os.path.dirname(os.path.abspath(__file__))
os.chdir(path)
sys.path = [path] + [p for p in sys.path if p != path]


def main(argv):
    parser = argparse.ArgumentParser(prog='web2py.py', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--version', action='store_true')
    parser.add_argument('-S', '--shell', metavar='APP')
    parser.add_argument('-M', '--import_models', action='store_true')
    parser.add_argument('-R', '--run', metavar='SCRIPT')
    parser.add_argument('-A', '--args', nargs=argparse.REMAINDER, default=[])
    parser.add_argument('--no_banner', '--no-banner', action='store_true')
    parser.add_argument('-Q', '--quiet', action='store_true')
    parser.add_argument('-K', '--scheduler', metavar='APP[:GROUP...]', action='append',
                        default=[])
    parser.add_argument('--no_gui', '--no-gui', action='store_true')
    options = parser.parse_args(argv)
    if options.version:
        with open('VERSION') as f:
            print(f.read().strip())
        return 0
    if options.scheduler and not options.shell:
        schedulers = [s for value in options.scheduler for s in value.split(',') if s]
        if len(schedulers) != 1:
            parser.error('this TEST STAND-IN runs one scheduler: -K APP[:GROUP...]')
        import gluon.shell
        app_groups = schedulers[0].split(':')
        if not gluon.shell.app_exists(app_groups[0]):
            # as web2py: the app is skipped, and with no scheduler left it gives up
            sys.stderr.write("web2py.py: warning: argument -K/--scheduler: bad application "
                             "%r, skipped\nweb2py.py: error: no scheduler left\n" % app_groups[0])
            return 1
        return gluon.shell.run_scheduler(app_groups)
    if not (options.shell and options.run):
        parser.error('this TEST STAND-IN only supports --version, -S APP [-M] -R SCRIPT '
                     'and -K APP')
    import gluon.shell
    return gluon.shell.run(options.shell, options.import_models, options.run, options.args)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
