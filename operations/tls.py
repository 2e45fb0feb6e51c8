"""TLS material for nginx: a self-signed certificate made on the server, or the user's own."""

from __future__ import annotations

from pathlib import Path

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.facts.files import File, Sha256File

from .formats import sha256_file
from .scripts import run_script
from .secrets_upload import upload_secret


@operation()
def self_signed_certificate(
    cert: str,
    key: str,
    common_name: str,
    bits: int,
    days: int,
):
    """
    Generate a self-signed RSA certificate on the server, once.

    + cert: path of the certificate (PEM, 0644)
    + key: path of the private key (PEM, 0600); it is created on the server and never copied
    + common_name: the certificate's CN
    + bits: RSA key size (2048 or more)
    + days: validity

    An existing certificate and key are kept as they are (replace them by deleting both).

    **Example:**

    .. code:: python

        tls.self_signed_certificate(
            name="Self-signed certificate",
            cert="/etc/ssl/web2py/web2py.crt",
            key="/etc/ssl/web2py/web2py.key",
            common_name="www.example.com",
            bits=2048,
            days=3650,
        )
    """
    if host.get_fact(File, path=cert) and host.get_fact(File, path=key):
        host.noop(f"certificate {cert} and key {key} exist")
        return
    yield from run_script(
        "self-signed-cert.sh", cert, key, str(int(bits)), str(int(days)), common_name
    )


@operation()
def certificate_files(local_cert: str, local_key: str, cert: str, key: str):
    """
    Install the user's own certificate and private key from the controller.

    + local_cert: certificate (PEM, full chain) on the controller
    + local_key: private key (PEM) on the controller
    + cert: destination of the certificate on the server (0644 root)
    + key: destination of the key on the server (0600 root); its content is never printed

    **Example:**

    .. code:: python

        tls.certificate_files(
            name="Install our certificate",
            local_cert="secrets/www.crt",
            local_key="secrets/www.key",
            cert="/etc/ssl/web2py/web2py.crt",
            key="/etc/ssl/web2py/web2py.key",
        )
    """
    changed = False
    for local, remote, mode in ((local_cert, cert, "644"), (local_key, key, "600")):
        if host.get_fact(Sha256File, path=remote) == sha256_file(local):
            continue
        changed = True
        yield StringCommand("mkdir", "-p", QuoteString(str(Path(remote).parent)))
        yield from upload_secret(Path(local).read_bytes(), remote, "root", "root", mode)
    if not changed:
        host.noop(f"certificate {cert} and key {key} are up to date")
