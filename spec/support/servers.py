#!/usr/bin/env python3
"""Start and stop the local DynamoDB servers the integration tests use.

  servers.py start STATE_DIR [--owner-pid PID]
  servers.py stop STATE_DIR

`start` launches moto and dynalite on free loopback ports, one sigproxy.py
(SigV4 checking + fault injection) in front of each, waits until every one
answers a signed ListTables, then writes STATE_DIR/env.sh (export lines, see
write_env) and returns, leaving the servers running in their own sessions.
Their output goes to STATE_DIR/<name>.log and their pids to STATE_DIR/pids.
With --owner-pid, a small watchdog stops everything once that process is
gone, so servers do not outlive a wrapper that was killed outright.

`stop` terminates what STATE_DIR/pids lists (TERM, then KILL after 5 s).

Must run with the project venv's Python (it needs botocore).
"""

import argparse
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import sigproxy

SUPPORT_DIR = Path(__file__).resolve().parent
REPO_ROOT = SUPPORT_DIR.parent.parent
DYNALITE_CLI = SUPPORT_DIR / "node" / "node_modules" / "dynalite" / "cli.js"
MOTO_SERVER = REPO_ROOT / ".venv" / "bin" / "moto_server"

ACCESS_KEY = sigproxy.DEFAULT_ACCESS_KEY
SECRET_KEY = sigproxy.DEFAULT_SECRET_KEY
REGION = "us-east-1"
LOOPBACK = "127.0.0.1"

START_TIMEOUT_SECONDS = 60
STOP_GRACE_SECONDS = 5
WATCHDOG_POLL_SECONDS = 0.5


class StartError(Exception):
    """A server did not come up; the message names it."""

    def __init__(self, name, reason, log_path=None):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason
        self.log_path = log_path


# --------------------------------------------------------------------------
# Talking to DynamoDB


def sign_request(url, operation, payload, access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                 region=REGION, token=None, extra_headers=None):
    """Headers (dict) and body of one DynamoDB JSON request signed by botocore."""
    netloc = urllib.parse.urlsplit(url).netloc
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "Host": netloc,
        "Content-Type": sigproxy.JSON_CONTENT_TYPE,
        "X-Amz-Target": f"DynamoDB_20120810.{operation}",
    }
    headers.update(extra_headers or {})
    request = AWSRequest(method="POST", url=f"http://{netloc}/", data=body, headers=headers)
    SigV4Auth(Credentials(access_key, secret_key, token), "dynamodb", region).add_auth(request)
    return dict(request.headers.items()), body


def send(url, headers, body, timeout=10):
    """POST to `url` (path included) on a fresh connection; (status, headers, body).

    `headers` of the answer is an http.client.HTTPMessage (case-insensitive).
    """
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("POST", parts.path or "/", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.msg, response.read()
    finally:
        conn.close()


def signed_call(url, operation, payload, timeout=10, **signing):
    """One signed DynamoDB call; (status, headers, body)."""
    headers, body = sign_request(url, operation, payload, **signing)
    return send(url, headers, body, timeout=timeout)


# --------------------------------------------------------------------------
# Processes


def free_ports(count):
    """`count` distinct loopback ports that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):  # hold them all open so none is picked twice
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def process_start_time(pid):
    """Kernel start time of `pid` (clock ticks since boot), or None if it is
    gone or a zombie.  Stored next to each pid so that `stop` never signals
    an unrelated process that reused the number."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces
    if fields[0] == "Z":
        return None
    return fields[19]


class PidFile:
    """STATE_DIR/pids: one `PID STARTTIME NAME` line per process started."""

    def __init__(self, state_dir):
        self.path = Path(state_dir) / "pids"

    def add(self, name, pid):
        with self.path.open("a") as f:
            f.write(f"{pid} {process_start_time(pid)} {name}\n")

    def entries(self):
        """(pid, start time, name) of every recorded process."""
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for line in lines:
            pid, start_time, name = line.split(" ", 2)
            entries.append((int(pid), start_time, name))
        return entries

    def remove(self):
        self.path.unlink(missing_ok=True)


def spawn(name, argv, state_dir, pids):
    """Start `argv` in its own session (no terminal signals, not waited for by
    the shell), output to STATE_DIR/<name>.log; record its pid."""
    log_path = Path(state_dir) / f"{name}.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env,
                                    start_new_session=True)
        except OSError as exc:
            raise StartError(name, f"cannot execute {argv[0]}: {exc}", log_path) from None
    pids.add(name, proc.pid)
    return proc


def is_alive(pid, start_time):
    return process_start_time(pid) == start_time


def signal_process(pid, sig):
    """Signal the process group the process leads (it was started with
    setsid, so it covers any helpers it forked), else just the process."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop(state_dir, spare_pid=None):
    """Stop every recorded process still alive; return how many there were."""
    pids = PidFile(state_dir)
    alive = [(pid, st) for pid, st, _ in pids.entries()
             if pid != spare_pid and is_alive(pid, st)]
    for pid, _ in alive:
        signal_process(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline and any(is_alive(p, st) for p, st in alive):
        time.sleep(0.05)
    for pid, start_time in alive:
        if is_alive(pid, start_time):
            signal_process(pid, signal.SIGKILL)
    pids.remove()
    return len(alive)


# --------------------------------------------------------------------------
# Starting


def wait_until_answering(name, url, proc, log_path, deadline):
    """Poll `url` with a signed ListTables until it answers 200."""
    last_problem = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StartError(name, f"exited with status {proc.returncode} "
                                   f"before answering ({last_problem})", log_path)
        try:
            status, _, body = signed_call(url, "ListTables", {}, timeout=2)
            if status == 200:
                return
            last_problem = f"HTTP {status}: {body[:300]!r}"
        except (OSError, http.client.HTTPException) as exc:
            last_problem = repr(exc)
        time.sleep(0.1)
    raise StartError(name, f"not answering {url} after {START_TIMEOUT_SECONDS} s "
                           f"(last: {last_problem})", log_path)


def launch_all(state_dir, pids):
    """Start backends and proxies; [(name, url, proc, log)] in readiness order."""
    node = shutil.which("node")
    if node is None:
        raise StartError("dynalite", "`node` is not on PATH")
    for name, path in (("moto", MOTO_SERVER), ("dynalite", DYNALITE_CLI)):
        if not path.exists():
            raise StartError(name, f"{path} is missing (see spec/support/requirements.txt "
                                   "and spec/support/node/package.json)")
    moto_port, dynalite_port, moto_proxy_port, dynalite_proxy_port = free_ports(4)
    backends = {
        "moto": (moto_port, [str(MOTO_SERVER), "-H", LOOPBACK, "-p", str(moto_port)]),
        "dynalite": (dynalite_port, [node, str(DYNALITE_CLI), "--host", LOOPBACK,
                                     "--port", str(dynalite_port)]),
    }
    proxy_ports = {"moto": moto_proxy_port, "dynalite": dynalite_proxy_port}
    started = []
    for name, (port, argv) in backends.items():
        proc = spawn(name, argv, state_dir, pids)
        started.append((name, f"http://{LOOPBACK}:{port}", proc))
    for name, (port, _) in backends.items():
        proxy_name = f"{name}-proxy"
        argv = [sys.executable, str(SUPPORT_DIR / "sigproxy.py"),
                "--listen-port", str(proxy_ports[name]),
                "--backend", f"http://{LOOPBACK}:{port}"]
        if name == "moto":
            # see sigproxy.ProxyServer: moto's conditional writes race each other
            argv.append("--serialize-backend")
        proc = spawn(proxy_name, argv, state_dir, pids)
        started.append((proxy_name, f"http://{LOOPBACK}:{proxy_ports[name]}", proc))
    return [(name, url, proc, Path(state_dir) / f"{name}.log")
            for name, url, proc in started]


def write_env(state_dir, urls):
    """STATE_DIR/env.sh, for `. env.sh` in a POSIX shell."""
    variables = {
        "DDB_TEST_MOTO_URL": urls["moto-proxy"],
        "DDB_TEST_DYNALITE_URL": urls["dynalite-proxy"],
        "DDB_TEST_MOTO_DIRECT": urls["moto"],
        "DDB_TEST_DYNALITE_DIRECT": urls["dynalite"],
        "DDB_TEST_ACCESS_KEY": ACCESS_KEY,
        "DDB_TEST_SECRET_KEY": SECRET_KEY,
        "DDB_TEST_REGION": REGION,
        "DDB_TEST_STATE_DIR": str(Path(state_dir).resolve()),
    }
    text = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in variables.items())
    tmp = Path(state_dir) / "env.sh.tmp"
    tmp.write_text(text)
    tmp.replace(Path(state_dir) / "env.sh")


def start_watchdog(state_dir, owner_pid, pids):
    owner_start = process_start_time(owner_pid)
    if owner_start is None:
        raise StartError("watchdog", f"owner process {owner_pid} does not exist")
    spawn("watchdog", [sys.executable, str(Path(__file__).resolve()), "watch",
                       str(state_dir), str(owner_pid), owner_start], state_dir, pids)


def start(state_dir, owner_pid=None):
    """Bring everything up or, on any failure, tear down what was started."""
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    pids = PidFile(state_dir)
    began = time.monotonic()
    try:
        if owner_pid is not None:
            start_watchdog(state_dir, owner_pid, pids)
        started = launch_all(state_dir, pids)
        deadline = began + START_TIMEOUT_SECONDS
        for name, url, proc, log_path in started:
            wait_until_answering(name, url, proc, log_path, deadline)
        write_env(state_dir, {name: url for name, url, _, _ in started})
    except BaseException as exc:
        report_failure(exc)
        stopped = stop(state_dir)
        sys.stderr.write(f"servers.py: stopped the {stopped} process(es) already started\n")
        return 1
    return 0


def report_failure(exc):
    bar = "=" * 72
    lines = [bar]
    if isinstance(exc, StartError):
        lines.append(f"servers.py: FAILED TO START {exc.name}: {exc.reason}")
        if exc.log_path is not None:
            lines.append(f"  log: {exc.log_path}; its last lines:")
            lines.extend("  | " + line for line in tail(exc.log_path, 20))
    elif isinstance(exc, KeyboardInterrupt):
        lines.append("servers.py: start interrupted")
    else:
        lines.append(f"servers.py: FAILED TO START the test servers: {exc!r}")
    lines.append(bar)
    sys.stderr.write("\n".join(lines) + "\n")


def tail(path, count):
    try:
        return Path(path).read_text(errors="replace").splitlines()[-count:]
    except OSError:
        return ["(no log)"]


# --------------------------------------------------------------------------
# Watchdog


def watch(state_dir, owner_pid, owner_start):
    """Stop the servers once the owner is gone (or has already stopped them)."""
    pids = PidFile(state_dir)
    while is_alive(owner_pid, owner_start) and pids.path.exists():
        time.sleep(WATCHDOG_POLL_SECONDS)
    if pids.path.exists():
        stop(state_dir, spare_pid=os.getpid())
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start_cmd = commands.add_parser("start", help="start servers, write STATE_DIR/env.sh")
    start_cmd.add_argument("state_dir")
    start_cmd.add_argument("--owner-pid", type=int,
                           help="stop the servers when this process exits")
    stop_cmd = commands.add_parser("stop", help="stop the servers of STATE_DIR")
    stop_cmd.add_argument("state_dir")
    watch_cmd = commands.add_parser("watch")  # internal: the --owner-pid watchdog
    watch_cmd.add_argument("state_dir")
    watch_cmd.add_argument("owner_pid", type=int)
    watch_cmd.add_argument("owner_start")
    args = parser.parse_args(argv)
    if args.command == "start":
        return start(args.state_dir, args.owner_pid)
    if args.command == "stop":
        print(f"servers.py: stopped {stop(args.state_dir)} process(es)")
        return 0
    return watch(args.state_dir, args.owner_pid, args.owner_start)


if __name__ == "__main__":
    sys.exit(main())
