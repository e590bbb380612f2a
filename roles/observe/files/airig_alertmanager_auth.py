#!/usr/bin/python3
"""Alertmanager's web configuration for the observe role (issue 29 item 7): basic auth for one
user, Prometheus, with the bcrypt hash of the password in PASSWORD_FILE. The file is rewritten
only when its hash does not match the password (so a re-run changes nothing); prints "changed"
or "unchanged".

Usage: airig_alertmanager_auth.py PASSWORD_FILE WEB_CONFIG_FILE USER"""

import os
import re
import sys

import bcrypt


def main() -> int:
    password_file, web_file, user = sys.argv[1:4]
    with open(password_file, "rb") as f:
        password = f.read().strip()
    try:
        with open(web_file, encoding="utf-8") as f:
            found = re.search(rf"^  {re.escape(user)}: (\S+)$", f.read(), re.MULTILINE)
        if found and bcrypt.checkpw(password, found[1].encode()):
            print("unchanged")
            return 0
    except (OSError, ValueError):
        pass
    digest = bcrypt.hashpw(password, bcrypt.gensalt(rounds=10)).decode()
    tmp = web_file + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("# airig observe role: only Prometheus (basic auth) reaches Alertmanager.\n")
        f.write(f"basic_auth_users:\n  {user}: {digest}\n")
    os.replace(tmp, web_file)
    print("changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
