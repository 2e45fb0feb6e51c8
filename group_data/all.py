# Every data key pyinfra-web2py reads, with its default. Override per group
# (group_data/<group>.py), per host (in the inventory) or per run (--data key=value).
# Keys are checked on the controller before any host is touched (operations/settings/), and
# these are their only defaults (operations/settings/defaults.py reads them from here).

# --- install_web2py: web2py itself ---
# web2py source: an https URL each server downloads (http only with web2py_sha256), or a zip on
# the controller (uploaded). Links, special files and names outside web2py/ are refused.
web2py_source = "https://www.web2py.com/examples/static/web2py_src.zip"
# sha256 the source zip must have: checked on the controller (local zip) or the server (URL).
web2py_sha256 = None
# Where web2py lives on the server (the fabfile's location).
web2py_root = "/home/www-data/web2py"
# The account uWSGI and the schedulers run as; nginx must be able to reach its socket (group).
web2py_user = "www-data"
web2py_group = "www-data"
# web2py admin password. Better left None here: then $WEB2PY_ADMIN_PASSWORD or a prompt is used,
# and with neither the admin app stays disabled. Hashed on the controller; never in argv or logs.
web2py_admin_password = None
# Apps installed with web2py from controller folders: {"notes": "examples/apps/notes"}.
web2py_apps = {}
# Apps that get a web2py scheduler unit (web2py-scheduler@<app>): ["notes"].
web2py_schedulers = []
# Seconds a scheduler's running task may take to finish when its unit stops or restarts (app
# deploys, rollbacks, restores, systemctl); after that the task is stopped.
web2py_scheduler_stop_timeout = 60
# Where configs, the uWSGI socket/FIFO and uploaded archives live on the server. The run dir is a
# folder right under /run; the cache dir (root-only) is never in /tmp or alike.
web2py_config_dir = "/etc/web2py"
web2py_run_dir = "/run/web2py"
web2py_cache_dir = "/var/cache/pyinfra-web2py"

# --- install_web2py: nginx ---
nginx_server_name = "_"  # server_name; "_" answers any host name
http_port = 80
https_port = 443
https_redirect = False  # True: plain HTTP answers 301 to HTTPS
# HSTS: browsers use only HTTPS for this long (seconds, e.g. 31536000) once they saw it; 0: off.
# Turn it on once HTTPS works with a real certificate: browsers refuse a self-signed one then.
nginx_hsts_seconds = 0
nginx_ipv6 = True  # also listen on [::]
nginx_client_max_body_size = "10m"  # largest upload nginx accepts
# Your own certificate (full chain) and key on the controller; both None: self-signed.
tls_cert = None
tls_key = None
tls_key_bits = 2048  # RSA size of the self-signed key (2048 or more)
tls_days = 3650  # validity of the self-signed certificate

# --- install_web2py: uWSGI ---
uwsgi_processes = 4  # worker processes
uwsgi_harakiri = 60  # seconds before a stuck request's worker is recycled (0: never)
uwsgi_max_requests = 5000  # requests before a worker is recycled (0: never)
uwsgi_listen = 1024  # socket backlog: requests queued while workers are busy or reloading

# --- create_user ---
deploy_user = None  # the account to create (required by deploys/create_user.py)
deploy_user_password = None  # None: key-only login; else set from $DEPLOY_USER_PASSWORD or this
deploy_user_groups = ["www-data"]
deploy_user_public_key = "~/.ssh/id_ed25519.pub"  # controller file installed for that user
# sudo for the user: "web2py" (only systemctl for nginx, web2py-uwsgi and schedulers),
# "full" (NOPASSWD: ALL, only when asked), or "none".
deploy_user_sudo = "web2py"

# --- webserver ---
webserver_action = "status"  # start | stop | restart | reload | status

# --- app_deploy, rollback, unlock ---
# Apps to ship: {name: folder} or {name: {setting: value}}. Settings (default):
#   path (required): the app folder on the controller
#   package_mode ("code"): "code" ships code only; "full" also seeds data on a first deploy
#   include / exclude ([]): extra glob patterns on paths inside the app (exclude wins)
#   health_path ("/<app>/default/index"), health_status (200), health_text (""): the health check
#   keep_releases (5), keep_backups (10), backup (True: zip the live app before each deploy)
#   hooks ({}): {"before_check"|"before_switch"|"after_switch": [commands]}, run in the release
#     folder as the web2py user; {"run": "command", "as": "root"} for one that needs root
#   version (""): a label for the audit log; default: the package's sha256 prefix
#   source ("local"); "git" with repo, ref and subdir (""): export that commit and ship it
#   migrate (False): run the app's models (DAL migrations) before the switch
#   maintenance (False): deploy (and restore) under maintenance: the notice for notice_seconds
#     (60), then 503 with the page (down_message, Retry-After retry_after: 600) while the backup,
#     migrations, switch and health check run, then up again whatever the outcome;
#     notice_message / down_message (None: a default text)
#   shared_files (["private/appconfig.ini", "private/auth.key"]): files that live on the server,
#     not in releases: seeded from the package (or the server's old copy) once, then kept, and
#     linked into every release; read-only to the app. A file you list that nothing provides is
#     refused before anything changes (the two defaults apply only to apps that have them).
#   appconfig (None): {section: {option: value}} rendered into each release's
#     private/appconfig.ini (0640 root:www-data); "${VAR}" comes from the controller's
#     environment and is masked in diffs; set it per host group for per-environment config
#   auth_key (None): "${VAR}": the app's private/auth.key from the controller's environment;
#     None: the package's, else the one the hosts hold, else one generated for all hosts
deploy_apps = {}
deploy_only = None  # "a,b": deploy only these apps of deploy_apps
deploy_maintenance = None  # True/False: override every app's maintenance for this run
deploy_notice_seconds = None  # override every app's notice_seconds for this run (0: no notice)
deploy_lock_wait_seconds = 120  # deploy/rollback/restore: wait this long for a live run's lock
# deploy/rollback/restore: how long each wait on the server may take before the run fails
deploy_check_timeout_seconds = 30  # the pre-switch check, and the health check through nginx
deploy_reload_timeout_seconds = 60  # uWSGI's chain reload: until every worker is a new one
deploy_hook_timeout_seconds = 300  # each hook, and the migrations (migrate)
deploy_drain_timeout_seconds = 10  # going down for maintenance: requests already in uWSGI
deploy_run_timeout_seconds = 3600  # deploy/rollback/restore: wait this long for the server's run
web2py_apps_dir = "/srv/web2py-apps"  # releases, shared data, release log, audit log, lock
web2py_backups_dir = "/var/backups/web2py"  # <app>.<YYYYmmddTHHMMSSZ>.zip + .sha256 (0700)
rollback_app = None  # rollback: the app
rollback_to = None  # rollback: a release id; None: the previous good release
unlock_app = None  # unlock: the app whose stale lock to release
restore_app = None  # restore: the app
restore_backup = None  # restore: a backup file name or "latest"; None lists the backups
restore_data = False  # restore: also the backup's data (databases, uploads); runs down
retrieve_app = None  # retrieve: the app
retrieve_backup = "latest"  # retrieve: a backup name, "latest", or "snapshot" (take one now)
retrieve_dir = "retrieved"  # retrieve: local folder; files go to <dir>/<host>/<app>/
cleanup_days = 30  # cleanup: remove sessions, errors and cache entries older than this
backup_app = None  # backup: the app to back up now (deploys/backup.py)

# --- maintenance ---
maintenance_action = None  # notify | down | up (required)
maintenance_app = None  # the app (required)
maintenance_message = None  # text of the notice or the 503 page (plain text); None: a default
maintenance_allow = []  # down: IPs/CIDRs that still reach a down app (a change reloads nginx)
maintenance_retry_after = 600  # down: seconds in the 503's Retry-After header

# --- app_deploy across hosts: roll-outs (operations/rollout.py) ---
# Batches, in inventory order: [1, "25%", "100%"] = a canary host, then a quarter of the
# hosts, then the rest (the last size repeats). None: every host at once.
rollout_batches = None
rollout_max_fail_percent = 0  # failed hosts (percent of the run's) above which no batch starts
rollout_soak_seconds = 0  # after each batch: watch its hosts this long (0: no health gate)
rollout_max_error_rate = 0  # gate: the most 5xx answers allowed, in percent of the requests
rollout_on_failure = "stop"  # a stopped rollout: "stop" (keep) or "rollback" (updated hosts)
fleet_summary_file = None  # also write the fleet summary as JSON here (path on the controller)
notify_webhook_url = None  # POST the summary (JSON, "text" + "summary") to this URL
notify_webhook_token_env = None  # name of the env var whose value is sent as a Bearer token
status_file = None  # deploys/status.py: also write the status as JSON here (controller path)
