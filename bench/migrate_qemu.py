#!/usr/bin/env python3
"""QEMU's built-in live migration with non-shared storage, as libvirt does
it, for bench/migrate.sh to compare with kiln's:

  1. the destination QEMU (started with -incoming defer) exports its empty
     disk over NBD (nbd-server-start, nbd-server-add);
  2. the source mirrors its disk there (drive-mirror, sync=full) until the
     job is ready (in step with the guest's writes);
  3. memory moves (migrate, pause-before-switchover); while the source is
     paused the mirror is completed (block-job-cancel of a ready job);
  4. the destination stops its NBD server and runs the guest.

usage: migrate_qemu.py SRC_QMP DST_QMP DST_IP DRIVE  -> JSON on stdout
"""
import json
import socket
import sys
import time


class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.file = self.sock.makefile("rw")
        self.read()  # greeting
        self.cmd("qmp_capabilities")

    def read(self):
        line = self.file.readline()
        if not line:
            raise SystemExit("QEMU closed its monitor")
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.file.write(json.dumps(msg) + "\n")
        self.file.flush()
        while True:
            r = self.read()
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise SystemExit(f"{name}: {r['error']['desc']}")


def main():
    src, dst, dst_ip, drive = Qmp(sys.argv[1]), Qmp(sys.argv[2]), sys.argv[3], sys.argv[4]
    start, paused = time.monotonic(), 0.0
    dst.cmd("nbd-server-start", addr={"type": "inet", "data": {"host": dst_ip, "port": "10809"}})
    dst.cmd("nbd-server-add", device=drive, writable=True)
    src.cmd("drive-mirror", device=drive, target=f"nbd://{dst_ip}:10809/{drive}",
            sync="full", format="raw", mode="existing", **{"job-id": "mirror"})
    while not any(j.get("ready") for j in src.cmd("query-block-jobs")):
        time.sleep(0.05)
    mirrored = time.monotonic()
    caps = [{"capability": "pause-before-switchover", "state": True}]
    src.cmd("migrate-set-capabilities", capabilities=caps)
    src.cmd("migrate-set-parameters", **{"downtime-limit": 100})
    dst.cmd("migrate-incoming", uri=f"tcp:{dst_ip}:4444")
    src.cmd("migrate", uri=f"tcp:{dst_ip}:4444")
    while True:
        info = src.cmd("query-migrate")
        status = info.get("status")
        if status == "pre-switchover":
            paused = time.time()
            src.cmd("block-job-cancel", device="mirror")
            while src.cmd("query-block-jobs"):
                time.sleep(0.005)
            src.cmd("migrate-continue", state="pre-switchover")
        elif status == "completed":
            break
        elif status in ("failed", "cancelled"):
            raise SystemExit(f"migration {status}: {info.get('error-desc')}")
        time.sleep(0.01)
    while dst.cmd("query-status")["status"] != "running":
        time.sleep(0.01)
    dst.cmd("nbd-server-stop")
    end = time.monotonic()
    print(json.dumps({
        "total_ms": round((end - start) * 1000),
        "mirror_ms": round((mirrored - start) * 1000),
        "downtime_ms": info.get("downtime"),
        "memory_bytes": info.get("ram", {}).get("transferred"),
        "paused_at_unix_ms": round(paused * 1000),
    }))


if __name__ == "__main__":
    main()
