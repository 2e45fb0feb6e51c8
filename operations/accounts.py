"""Operations for login accounts: password hashes and sudoers drop-ins."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.files import Sha256File

from .facts.accounts import ShadowPassword
from .formats import sha256_text
from .local.passwords import sha512_crypt_hash, shadow_salt
from .scripts import run_script
from .secrets_upload import upload_secret


@operation()
def password(user: str, password: str):
    """
    Set a Unix user's password as a sha512-crypt hash made on the controller.

    + user: the existing user
    + password: the password in clear; neither it nor its hash appears in a command line

    The hash reaches ``chpasswd -e`` through a 0600 file, never argv. The server reports only
    the stored salt and a sha256 of the stored field, so an unchanged password is a no-op.

    **Example:**

    .. code:: python

        accounts.password(name="Set deploy's password", user="deploy", password=secret)
    """
    current = host.get_fact(ShadowPassword, user=user)
    salt = shadow_salt(current["salt"]) if current else None
    if current and salt:
        expected = sha512_crypt_hash(password, salt=salt[0], rounds=salt[1])
        if sha256_text(expected) == current["sha256"]:
            host.noop(f"password of {user} is up to date")
            return
    line = f"{user}:{sha512_crypt_hash(password)}\n".encode()
    staged = f"/etc/.pyinfra-web2py-chpasswd-{user}"
    yield from upload_secret(line, staged, "root", "root", "600")
    yield from run_script("set-password.sh", staged)


@operation()
def sudoers(filename: str, content: str):
    """
    Install ``/etc/sudoers.d/<name>``, checked with ``visudo -c`` before it takes effect.

    + filename: file name under /etc/sudoers.d (no dots: sudo skips such files)
    + content: the rules

    A drop-in that fails ``visudo -c`` is never installed, so a typo cannot lock sudo out.

    **Example:**

    .. code:: python

        accounts.sudoers(
            name="sudo for deploy",
            filename="deploy",
            content="deploy ALL=(root) NOPASSWD: /usr/bin/systemctl reload nginx\n",
        )
    """
    dest = f"/etc/sudoers.d/{filename}"
    if host.get_fact(Sha256File, path=dest) == sha256_text(content):
        host.noop(f"{dest} is up to date")
        return
    staged = f"/etc/sudoers.d/.{filename}"  # sudo ignores dotted names
    yield from upload_secret(content.encode(), staged, "root", "root", "440")
    yield from run_script("install-sudoers.sh", staged, dest)
