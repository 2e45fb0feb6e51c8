"""TEST STAND-IN (not web2py): a small compiler for web2py's template language.

Supported: {{=expr}} (escaped unless the value has .xml(), e.g. XML()),
{{extend 'layout.html'}} with {{include}} in the layout,
{{include 'path/file.html'}}, and Python lines where a trailing ':' opens a
block, {{pass}} closes it, and else:/elif ...:/except ...:/finally: continue
it. {{block name}} / {{end}} markers are accepted but blocks are not
overridable (their content is rendered in place).
"""

import ast
import os
import re

__all__ = ['parse_template', 'render']

TOKEN = re.compile(r'\{\{(.*?)\}\}', re.S)
CONTINUATION = re.compile(r'^(elif|else|except|finally)\b')


class TemplateError(SyntaxError):
    pass


def _tokens(text):
    out, pos = [], 0
    for m in TOKEN.finditer(text):
        if m.start() > pos:
            out.append(('text', text[pos:m.start()]))
        out.append(('code', m.group(1).strip()))
        pos = m.end()
    if pos < len(text):
        out.append(('text', text[pos:]))
    return out


def _filename(path, argument):
    try:
        name = ast.literal_eval(argument.strip())
    except (ValueError, SyntaxError):
        raise TemplateError('stand-in templates only accept literal names: %r'
                            % argument) from None
    return os.path.join(path, name)


def _expand(filename, path, depth=0):
    """Tokens of filename with extend/include resolved."""
    if depth > 20:
        raise TemplateError('too many nested extend/include')
    if not os.path.isfile(filename):
        raise TemplateError('missing view file %s' % filename)
    with open(filename, encoding='utf8') as f:
        tokens = _tokens(f.read())
    out, parent = [], None
    for kind, value in tokens:
        if kind == 'code' and value.startswith('extend '):
            parent = _filename(path, value[7:])
        elif kind == 'code' and value.startswith('include '):
            out.extend(_expand(_filename(path, value[8:]), path, depth + 1))
        elif kind == 'code' and (value.startswith('block ') or value == 'end'):
            continue
        else:
            out.append((kind, value))
    if parent:
        merged = []
        for token in _expand(parent, path, depth + 1):
            merged.extend(out if token == ('code', 'include') else [token])
        out = merged
    return out


def parse_template(filename, path):
    """Python source for the view `filename`; `path` is the app's views folder."""
    lines, indent = [], 0

    def emit(line):
        lines.append('    ' * indent + line)

    for kind, value in _expand(filename, path):
        if kind == 'text':
            emit('response.write(%r, escape=False)' % value)
        elif value.startswith('='):
            emit('response.write(%s)' % value[1:].strip())
        else:
            for line in value.splitlines():
                line = line.strip()
                if not line or line.startswith('#') or line == 'include':
                    continue
                if line == 'pass':
                    indent = max(indent - 1, 0)
                elif CONTINUATION.match(line):
                    indent -= 1
                    emit(line)
                    indent += 1
                elif line.endswith(':'):
                    emit(line)
                    indent += 1
                else:
                    emit(line)
    return '\n'.join(lines) + '\n'


def render(filename, path, context):
    """Run the compiled view in context (which must hold `response`)."""
    code = compile(parse_template(filename, path), filename, 'exec')
    exec(code, context)
