import hashlib
import warnings

from operations.formats import sha256_text
from operations.local.passwords import (
    sha512_crypt_hash,
    shadow_salt,
    web2py_hash,
    web2py_parameters,
    web2py_parameters_for,
)


def test_web2py_hash_matches_pbkdf2_definition():
    expected = hashlib.pbkdf2_hmac("sha512", b"pw", b"salt", 1000, 20).hex()
    assert web2py_hash("pw", "salt", 1000, 20) == f"pbkdf2(1000,20,sha512)$salt${expected}"


def test_parameters_file_is_web2py_format():
    assert web2py_parameters("pbkdf2(1,2,sha512)$s$ab") == 'password="pbkdf2(1,2,sha512)$s$ab"\n'


def test_same_password_same_salt_same_bytes():
    first = web2py_parameters_for("pw", None)
    prefix = first.split('"')[1].rsplit("$", 1)[0]
    assert web2py_parameters_for("pw", prefix) == first
    assert web2py_parameters_for("other", prefix) != first


def test_hash_cost_is_ours_never_the_servers():
    """The parameters file is not to be trusted: a weaker cost found there is not re-used."""
    for stored in (
        "pbkdf2(1,1,sha1)$abcdefghijklmnop",
        "pbkdf2(1000,20,sha512)$abcdefghijklmnop",
        "pbkdf2(100000,64,sha256)$abcdefghijklmnop",
        "pbkdf2(100000,64,sha512)$short",  # a salt we would never make
    ):
        rendered = web2py_parameters_for("pw", stored)
        assert rendered.startswith('password="pbkdf2(100000,64,sha512)$'), stored
        assert "abcdefghijklmnop" not in rendered and "$short$" not in rendered
    same = web2py_parameters_for("pw", "pbkdf2(100000,64,sha512)$abcdefghijklmnop")
    assert same.startswith('password="pbkdf2(100000,64,sha512)$abcdefghijklmnop$')


def test_new_salt_each_time_without_prefix():
    assert web2py_parameters_for("pw", None) != web2py_parameters_for("pw", None)


def test_sha512_crypt_agrees_with_libc():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt as libc_crypt

    stored = sha512_crypt_hash("a long password beyond eight chars")
    assert stored.startswith("$6$rounds=656000$")
    assert libc_crypt.crypt("a long password beyond eight chars", stored) == stored
    # DES crypt kept 8 characters; sha512-crypt must not
    assert libc_crypt.crypt("a long password beyond eight XXXXX", stored) != stored


def test_shadow_salt_round_trip():
    stored = sha512_crypt_hash("pw", salt="abcdefgh", rounds=10000)
    salt, rounds = shadow_salt(stored.rsplit("$", 1)[0])
    assert (salt, rounds) == ("abcdefgh", 10000)
    assert sha256_text(sha512_crypt_hash("pw", salt=salt, rounds=rounds)) == sha256_text(stored)
    assert shadow_salt("$6$abcdefgh") == ("abcdefgh", 5000)
    assert shadow_salt("!") is None
    assert shadow_salt("$y$j9T$abc") is None
