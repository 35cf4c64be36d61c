"""app.py's start: gevent's patches with the entry points read once; no library the server does not use."""
import subprocess
import sys
import time

from chat import ROOT
from tests.servers import free_port, health, release_port

PROBE = """
import runpy
from importlib import metadata

from gevent import events, monkey

entry = runpy.run_path("app.py", run_name="papo_entry_probe")
groups = ["gevent.plugins.monkey.will_patch_all", "gevent.plugins.monkey.will_patch_module",
          "gevent.plugins.monkey.did_patch_all", "console_scripts"]
before = {group: sorted(metadata.entry_points(group=group)) for group in groups}
reads, heard = [], []
distributions = metadata.distributions
metadata.distributions = lambda **kw: reads.append(1) or distributions(**kw)
events.subscribers.append(lambda event: heard.append(type(event).__name__))
assert entry["_monkey_patch"]() == "gevent"  # ASYNC_MODE unset: the default
patching = len(reads)
with entry["_entry_points_read_once"]():
    inside = {group: sorted(metadata.entry_points(group=group)) for group in groups}
metadata.distributions = distributions
print(patching, inside == before, len(before["gevent.plugins.monkey.will_patch_all"]),
      metadata.entry_points.__module__, monkey.is_module_patched("socket"), "GeventDidPatchAllEvent" in heard)
"""


def test_gevent_patches_everything_with_the_entry_points_read_once(tmp_path):
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/papo.db",
                               "SECRET_KEY": "s" * 32})
    assert done.returncode == 0, done.stderr
    reads, same, plugins, module, patched, did_patch_all = done.stdout.split()
    assert reads == "1" and same == "True" and int(plugins) >= 1
    assert module == "importlib.metadata" and patched == "True" and did_patch_all == "True"


OPTIONAL = ("redis", "requests", "websocket")


def test_a_server_of_one_process_loads_no_client_library_nor_redis(tmp_path):
    """app.py imports Papo with python-socketio's client and queue libraries looking absent (none is used)."""
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/papo.db", "SECRET_KEY": "s" * 32,
           "LOG_LEVEL": "WARNING"}
    with open(tmp_path / "imports", "w") as imports:
        server = subprocess.Popen([sys.executable, "-X", "importtime", "app.py", "--port", str(port)], cwd=ROOT,
                                  env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=imports)
    try:
        deadline = time.monotonic() + 30
        while health(f"http://127.0.0.1:{port}") != 200:
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "imports").read_text()[-2000:]
            time.sleep(0.05)
    finally:
        server.terminate()
        server.wait(10)
        release_port(port)
    # -X importtime lists an import that failed too, alone; one that succeeded brings its package's modules
    names = [line.rsplit("|", 1)[-1].strip() for line in (tmp_path / "imports").read_text().splitlines()
             if line.startswith("import time:")]
    assert "socketio.redis_manager" in names and "engineio.client" in names
    assert [name for name in names if name.partition(".")[0] in OPTIONAL and "." in name] == []


PROBE_REDIS = """
import runpy, sys
entry = runpy.run_path("app.py", run_name="papo_entry_probe")  # imports chat as `flask run` does
for name in [m for m in sys.modules if m.split(".")[0] in ("chat", "socketio", "engineio", "flask_socketio")
             or m.split(".")[0] in entry["OPTIONAL_LIBRARIES"]]:
    del sys.modules[name]
with entry["_clients_and_redis_absent"]():
    import chat
    from socketio import redis_manager
print(redis_manager.redis is None, [m for m in entry["OPTIONAL_LIBRARIES"] if m in sys.modules])
import chat.scaleout
print(redis_manager.redis is sys.modules["redis"], redis_manager.RedisError is sys.modules["redis"].RedisError)
"""


def test_redis_loaded_for_redis_url_reaches_python_socketios_queue(tmp_path):
    done = subprocess.run([sys.executable, "-c", PROBE_REDIS], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/papo.db",
                               "SECRET_KEY": "s" * 32})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["True []", "True True"]
