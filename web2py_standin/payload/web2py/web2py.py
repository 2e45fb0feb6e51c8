#!/usr/bin/env python3
"""TEST STAND-IN (not web2py): a tiny web2py.py.

Supported:
  python web2py.py --version
  python web2py.py -S APP [-M] -R SCRIPT [-A ARG ...]
      run SCRIPT (a path relative to the web2py root, as in web2py) in APP's
      environment, after its models with -M; commit afterwards.
Everything else (the built-in web server, -K scheduler, ...) is refused.
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
    options = parser.parse_args(argv)
    if options.version:
        with open('VERSION') as f:
            print(f.read().strip())
        return 0
    if not (options.shell and options.run):
        parser.error('this TEST STAND-IN only supports --version and -S APP [-M] -R SCRIPT')
    import gluon.shell
    return gluon.shell.run(options.shell, options.import_models, options.run, options.args)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
