"""Create a deploy user: key login, group www-data, a checked sudoers drop-in.

    pyinfra inventories/prod.py deploys/create_user.py --data deploy_user=alice

The controller's public key (deploy_user_public_key) is installed for *that* user. A password,
if wanted, comes from $DEPLOY_USER_PASSWORD (or data) and is stored as sha512-crypt, hashed on
the controller. The sudoers drop-in must pass ``visudo -c`` before it is installed.
"""

from pyinfra import host
from pyinfra.operations import files, server

from operations import accounts
from operations.local.sudoers import sudoers_rules
from operations.settings.data_keys import check_data_keys
from operations.settings.users import user_settings

check_data_keys()  # a misspelt --data key is refused, not ignored

u = user_settings(host.data)
home = f"/home/{u.user}"

server.user(
    name=f"User {u.user}", user=u.user, home=home, shell="/bin/bash", create_home=True,
    groups=list(u.groups), append=True, public_keys=[u.public_key],
)  # fmt: skip
files.directory(name=f"{home} private", path=home, user=u.user, group=u.user, mode="750")
if u.password:
    accounts.password(name=f"Password of {u.user}", user=u.user, password=u.password)
rules = sudoers_rules(u.user, u.sudo, u.schedulers)
if rules:
    accounts.sudoers(name=f"sudo scope {u.sudo} for {u.user}", filename=u.user, content=rules)
else:
    files.file(name=f"No sudo for {u.user}", path=f"/etc/sudoers.d/{u.user}", present=False)
