"""How the app serves itself with no flags: on this machine's loopback only."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LISTEN = "0A"  # the state of a listening socket in /proc/net/tcp


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a socket listening on ``port``, from the kernel's tables."""
    found = set()
    for table, loopback_v4 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == LISTEN and int(port_hex, 16) == port:
                found.add(address)
    return found


def is_loopback(address_hex: str) -> bool:
    if len(address_hex) == 8:  # IPv4, little-endian bytes
        return bytes.fromhex(address_hex)[::-1][0] == 127
    return address_hex == "00000000000000000000000001000000"  # ::1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_app_listens_on_loopback_only_by_default(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}  # no settings from outside
    env["DIGITLAB_CHECKPOINTS"] = str(tmp_path)
    # No address flag: only the port (free for the test) and headless (no display to open a browser on).
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", f"--server.port={port}",
                               "--server.headless=true"], cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 60
        while not listening_addresses(port):
            assert server.poll() is None and time.time() < deadline, "the app did not start"
            time.sleep(0.2)
        addresses = listening_addresses(port)
        assert addresses and all(is_loopback(a) for a in addresses), addresses
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=10) as response:
            assert response.read() == b"ok"
    finally:
        server.terminate()
        server.wait(15)
