# Example staging inventory: replace with your host. Group "staging".
staging = [
    ("staging.example.com", {"ssh_user": "deploy", "_sudo": True}),
]
