"""Password hashing done on the controller, so no secret ever reaches a server's command line.

- web2py's admin password: web2py's own ``CRYPT`` format, ``pbkdf2(ITER,KEYLEN,sha512)$SALT$HEX``,
  written to ``parameters_<port>.py`` exactly as ``web2py.py -a PASSWORD`` would.
- Unix account passwords: sha512-crypt via passlib (the libpass fork), ``$6$rounds=N$salt$hash``.
  The fabfile used DES crypt with a fixed salt, which silently keeps only 8 characters.

Idempotency without reading secrets back: a server reports only the *salt* and a sha256 of what
it stores; the controller re-hashes the password with that salt and compares digests.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string

from passlib.hash import sha512_crypt

WEB2PY_ITERATIONS = 100_000
WEB2PY_KEYLEN = 64
SALT_ALPHABET = string.ascii_letters + string.digits
UNIX_ROUNDS = 656_000
WEB2PY_HASH = re.compile(r"pbkdf2\((\d+),(\d+),(sha512|sha256|sha1)\)\$([^$]+)\$[0-9a-f]+")
SHADOW_SALT = re.compile(r"\$6\$(?:rounds=(\d+)\$)?([./0-9A-Za-z]{1,16})")


def new_salt(length: int = 16) -> str:
    """A random salt of letters and digits."""
    return "".join(secrets.choice(SALT_ALPHABET) for _ in range(length))


def web2py_hash(
    password: str,
    salt: str,
    iterations: int = WEB2PY_ITERATIONS,
    keylen: int = WEB2PY_KEYLEN,
    alg: str = "sha512",
) -> str:
    """web2py's CRYPT hash; web2py reads ITER, KEYLEN and ALG back from the prefix."""
    key = hashlib.pbkdf2_hmac(alg, password.encode(), salt.encode(), iterations, keylen)
    return f"pbkdf2({iterations},{keylen},{alg})${salt}${key.hex()}"


def web2py_parameters(password_hash: str) -> str:
    """The whole ``parameters_<port>.py`` file, as web2py.py writes it."""
    return f'password="{password_hash}"\n'


def web2py_parameters_for(password: str, stored_prefix: str | None) -> str:
    """Render the parameters file, reusing the server's salt when it has one.

    ``stored_prefix`` is ``pbkdf2(ITER,KEYLEN,ALG)$SALT`` as reported by the server (no hash).
    Reusing the salt means an unchanged password renders byte-identical content: no change
    reported. The cost is always ours (WEB2PY_ITERATIONS, WEB2PY_KEYLEN, sha512), never the
    file's: a server's file is not to be trusted, and a weaker one (``pbkdf2(1,1,sha1)``) is
    replaced by a new hash.
    """
    if stored_prefix:
        match = WEB2PY_HASH.fullmatch(stored_prefix + "$0")
        if match and match.groups()[:3] == (str(WEB2PY_ITERATIONS), str(WEB2PY_KEYLEN), "sha512"):
            salt = match.group(4)
            if len(salt) >= 16 and all(c in SALT_ALPHABET for c in salt):
                return web2py_parameters(web2py_hash(password, salt))
    return web2py_parameters(web2py_hash(password, new_salt()))


def sha512_crypt_hash(password: str, salt: str | None = None, rounds: int = UNIX_ROUNDS) -> str:
    """sha512-crypt (``$6$``) as /etc/shadow stores it; a given salt makes it deterministic."""
    kwargs: dict[str, object] = {"rounds": rounds}
    if salt is not None:
        kwargs["salt"] = salt
    return sha512_crypt.using(**kwargs).hash(password)


def shadow_salt(stored: str) -> tuple[str, int] | None:
    """``$6$rounds=N$salt`` (or ``$6$salt``) → (salt, rounds); None for any other scheme."""
    match = SHADOW_SALT.fullmatch(stored)
    if not match:
        return None
    rounds = int(match.group(1)) if match.group(1) else 5000
    return match.group(2), rounds
