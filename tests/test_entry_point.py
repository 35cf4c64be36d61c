"""app.py's start: gevent patches with the installed packages' entry points read once, not 25 times."""
import subprocess
import sys

from chat import ROOT

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
