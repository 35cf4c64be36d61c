"""Run Papo as N processes on consecutive ports behind nginx, sharing one Redis and one PostgreSQL.

    make cluster N=3                      # or: .venv/bin/python tools/cluster.py -n 3
    open http://127.0.0.1:8000/

Settings come from the environment as for one process; the defaults here are REDIS_URL=
redis://127.0.0.1:6379/0 and DATABASE_URL=postgresql://127.0.0.1:5432/papo (created when
missing). Processes listen on 127.0.0.1:5001.. and nginx, configured from deploy/nginx.conf,
on 127.0.0.1:8000 and runs in the foreground as a child with its pid, logs and temp files
under a temporary prefix; it routes each client by the papo_route cookie it gives it (see
docs/scaling.md). A process that dies is started again; Ctrl-C stops everything.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from urllib.parse import urlparse, urlunparse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NGINX_TEMPLATE = os.path.join(ROOT, "deploy", "nginx.conf")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://127.0.0.1:5432/papo"
FAIL_TIMEOUT = 5  # seconds nginx leaves a process it could not reach out of the hash (deploy/nginx.conf)


def nginx_config(listen, upstreams, template=NGINX_TEMPLATE):
    """deploy/nginx.conf with its listen address and upstream servers ("host:port" each) filled in."""
    with open(template) as handle:
        text = handle.read()
    servers = "".join(f"        server {address} max_fails=1 fail_timeout={FAIL_TIMEOUT}s;\n" for address in upstreams)
    text, found = re.subn(r"(# servers: one line[^\n]*\n).*?(\s*# servers: end)",
                          lambda m: m.group(1) + servers.rstrip("\n") + m.group(2), text, flags=re.S)
    text, listens = re.subn(r"^(\s*)listen\s+[^;]+;", lambda m: f"{m.group(1)}listen {listen};", text, flags=re.M)
    if found != 1 or listens != 1:
        raise ValueError(f"{template}: expected one '# servers:' block and one listen directive")
    return text


class Nginx:
    """nginx in the foreground (daemon off) with its own prefix directory; stop() ends it by its PID."""

    def __init__(self, listen, upstreams, binary=None):
        self.listen = listen
        self.binary = binary or shutil.which("nginx") or "/usr/sbin/nginx"
        self.prefix = tempfile.mkdtemp(prefix="papo-nginx-")
        os.chmod(self.prefix, 0o755)  # workers run as an unprivileged user when started by root
        os.makedirs(os.path.join(self.prefix, "temp"))
        self.conf = os.path.join(self.prefix, "nginx.conf")
        with open(self.conf, "w") as handle:
            handle.write(nginx_config(listen, upstreams))
        self.process = None

    @property
    def url(self):
        return f"http://{self.listen}"

    def command(self):
        return [self.binary, "-p", self.prefix, "-c", self.conf, "-e", "error.log", "-g", "daemon off;"]

    def start(self, timeout=10.0):
        check = subprocess.run(self.command() + ["-t", "-q"], capture_output=True, text=True)
        if check.returncode:
            raise RuntimeError(f"nginx rejected its configuration:\n{check.stderr}")
        self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, start_new_session=True)
        host, port = self.listen.rsplit(":", 1)
        deadline = time.monotonic() + timeout
        while not _accepts(host, int(port)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nginx did not start on {self.listen}:\n{self.log_tail()}")
            time.sleep(0.05)
        return self

    def exit_code(self) -> int | None:
        """The started process's exit code, None while it runs."""
        assert self.process is not None, "not started"
        return self.process.poll()

    def stop(self):
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGQUIT)  # graceful: the master waits for its workers
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def close(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.prefix, ignore_errors=True)

    def log_tail(self, lines=20):
        try:
            with open(os.path.join(self.prefix, "error.log")) as handle:
                return "\n".join(handle.read().splitlines()[-lines:])
        except FileNotFoundError:
            return "(no error.log)"


def _accepts(host, port):
    import socket
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def ensure_database(url):
    """Create the PostgreSQL database named in url when it does not exist yet."""
    parsed = urlparse(url)
    if parsed.scheme.split("+")[0] not in ("postgresql", "postgres"):
        return
    import psycopg
    from psycopg import sql

    name = parsed.path.lstrip("/")
    admin = urlunparse(parsed._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"cluster: created database {name}", flush=True)


def healthy(url, timeout=1.0):
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


class Worker:
    """One `python app.py` process on a fixed port."""

    def __init__(self, port, env, log_dir):
        self.port = port
        self.env = env
        self.log_path = os.path.join(log_dir, f"papo-{port}.log")
        self.process = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port",
                                             str(self.port)], cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def exit_code(self) -> int | None:
        """The started process's exit code, None while it runs."""
        assert self.process is not None, "not started"
        return self.process.poll()

    def stop(self):
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tools/cluster.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--processes", type=int, default=3, help="how many Papo processes (default 3)")
    parser.add_argument("--base-port", type=int, default=5001, help="port of the first process (default 5001)")
    parser.add_argument("--port", type=int, default=8000, help="port nginx listens on (default 8000)")
    args = parser.parse_args(argv)
    if not 1 <= args.processes <= 64:
        parser.error("--processes must be between 1 and 64")

    env = dict(os.environ)
    env.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    env.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    env.setdefault("PROXY_COUNT", "1")  # behind nginx: throttles must see the clients' addresses
    env["PYTHONUNBUFFERED"] = "1"
    ensure_database(env["DATABASE_URL"])
    log_dir = tempfile.mkdtemp(prefix="papo-cluster-")
    workers = [Worker(args.base_port + i, env, log_dir) for i in range(args.processes)]
    nginx = Nginx(f"127.0.0.1:{args.port}", [f"127.0.0.1:{w.port}" for w in workers])
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stopping.append(True))
    try:
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 30
        while not all(healthy(w.url) for w in workers):
            dead = [w for w in workers if w.exit_code() is not None]
            if dead or time.monotonic() > deadline:
                sys.exit(f"cluster: process on port {(dead or workers)[0].port} did not start; see {log_dir}")
            time.sleep(0.2)
        nginx.start()
        print(f"cluster: {args.processes} processes on ports {workers[0].port}-{workers[-1].port}, "
              f"REDIS_URL={env['REDIS_URL']}, DATABASE_URL={env['DATABASE_URL']}", flush=True)
        print(f"cluster: nginx on {nginx.url}/ (logs in {log_dir} and {nginx.prefix}); Ctrl-C stops", flush=True)
        while not stopping:
            for worker in workers:
                code = worker.exit_code()
                if code is not None:
                    print(f"cluster: process on port {worker.port} exited ({code}); "
                          "starting it again", flush=True)
                    worker.start()
            if nginx.exit_code() is not None:
                sys.exit(f"cluster: nginx exited:\n{nginx.log_tail()}")
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        print("cluster: stopping", flush=True)
        nginx.close()
        for worker in workers:
            worker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
