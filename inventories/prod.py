# Example production inventory: replace with your hosts. The file name makes the group "prod",
# so group_data/prod.py (if any) applies on top of group_data/all.py.
prod = [
    ("web1.example.com", {"ssh_user": "deploy", "_sudo": True}),
    ("web2.example.com", {"ssh_user": "deploy", "_sudo": True}),
]
