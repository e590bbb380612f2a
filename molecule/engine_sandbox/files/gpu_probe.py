"""Test probe (engine_sandbox scenario): open each path given and print "PATH ERRNO-NAME".

Run as a systemd unit under the engines' sandbox drop-in; "ok" means the open succeeded.
"""

import errno
import os
import sys

for path in sys.argv[1:]:
    try:
        os.close(os.open(path, os.O_RDWR))
        result = "ok"
    except OSError as exc:
        result = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    print(f"probe {path} {result}", flush=True)
