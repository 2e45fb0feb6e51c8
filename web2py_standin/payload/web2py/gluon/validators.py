"""TEST STAND-IN (not web2py): validators come from the bundled pydal, as in web2py."""

from pydal.validators import *  # noqa: F401,F403
from pydal.validators import __all__  # noqa: F401
