"""A BOINC client stand-in on the Windows side: run with the runtime's python.exe under wine.

It creates the slot's named shared memory as the Windows client does
(``shm_<comm_obj_name>``), writes init_data.xml, starts a counting app that
uses the runtime's ``boinc`` module, then suspends, resumes and quits it,
reading the app's status messages. Prints one JSON line of what it saw.

    python.exe client_standin.py SLOT_DIR
"""

import json
import mmap
import os
import re
import subprocess
import sys
import time

CHANNELS = ("process_control_request", "process_control_reply", "graphics_request",
            "graphics_reply", "heartbeat", "app_status", "trickle_up", "trickle_down")
APP = """
import boinc
boinc.init()
count = 0
while True:
    count += 1
    boinc.fraction_done(min(count / 1e9, 1.0))
"""


def main(slot):
    memory = mmap.mmap(-1, 1024 * len(CHANNELS), tagname="shm_boinc_7")

    def send(channel, text):
        at = CHANNELS.index(channel) * 1024
        while memory[at]:
            time.sleep(0.02)
        data = text.encode() + b"\0"
        memory[at + 1:at + 1 + len(data)] = data
        memory[at] = 1

    def status():
        at = CHANNELS.index("app_status") * 1024
        deadline = time.monotonic() + 20
        while not memory[at]:
            if time.monotonic() > deadline:
                raise SystemExit("no status message from the app")
            time.sleep(0.02)
        text = memory[at + 1:at + 1024].split(b"\0", 1)[0].decode()
        memory[at] = 0
        return float(re.search(r"<fraction_done>([^<]+)<", text).group(1))

    def fresh():
        status()
        return status()

    with open(os.path.join(slot, "init_data.xml"), "w") as f:
        f.write(f"<app_init_data>\n<comm_obj_name>boinc_7</comm_obj_name>\n<slot>7</slot>\n"
                f"<client_pid>{os.getpid()}</client_pid>\n</app_init_data>\n")
    with open(os.path.join(slot, "app.py"), "w") as f:
        f.write(APP)
    app = subprocess.Popen([sys.executable, "app.py"], cwd=slot, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = {"running": [status(), fresh()]}
    send("process_control_request", "<suspend/>")
    paused = fresh()
    seen["suspended"] = [paused, fresh()]
    send("process_control_request", "<resume/>")
    seen["resumed"] = fresh()
    send("process_control_request", "<quit/>")
    seen["exit_status"] = app.wait(timeout=30)
    seen["stderr"] = app.stderr.read().decode(errors="replace")
    print(json.dumps(seen))


if __name__ == "__main__":
    main(sys.argv[1])
