"""Locating, vetting and loading libcyscope.so."""

import os
import shutil
import subprocess

import pytest
from cyscope import native, process_memory


@pytest.fixture(autouse=True)
def fresh_loader(monkeypatch):
    native._reset_for_tests()
    yield
    native._reset_for_tests()


def _built_library(repo_root):
    path = repo_root / "python-shim" / "cyscope" / "_native" / native.LIBRARY_NAME
    if not path.exists():
        path = repo_root / "native" / "build" / native.LIBRARY_NAME
    assert path.exists(), "libcyscope.so is not built: run `npm run build` first"
    return path


def test_the_built_library_loads_with_the_expected_abi(repo_root):
    _built_library(repo_root)
    status = native.status()
    assert status.loaded, status.error
    assert status.abi == native.EXPECTED_ABI
    assert native.library().cyscope_version().decode() == "0.1.0"


def test_rss_from_the_library_matches_proc():
    rss_native = process_memory.rss_bytes()
    rss_proc = process_memory._rss_from_proc()
    assert rss_native > 10 * 1024 * 1024
    assert abs(rss_native - rss_proc) < 8 * 1024 * 1024


def test_a_library_in_a_world_writable_folder_is_refused(tmp_path, monkeypatch, repo_root):
    shared = tmp_path / "shared"
    shared.mkdir()
    shutil.copy(_built_library(repo_root), shared / native.LIBRARY_NAME)
    os.chmod(shared, 0o777)
    monkeypatch.setenv(native.ENV_OVERRIDE, str(shared / native.LIBRARY_NAME))
    status = native.status()
    assert not status.loaded
    assert "refused to load" in status.error and "writable by other users" in status.error
    # Without the library the RSS figure still comes from /proc.
    assert process_memory.rss_bytes() > 0


def test_a_symlink_into_a_world_writable_folder_is_refused(tmp_path, monkeypatch, repo_root):
    shared = tmp_path / "shared"
    shared.mkdir()
    shutil.copy(_built_library(repo_root), shared / native.LIBRARY_NAME)
    os.chmod(shared, 0o777)
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    (mine / native.LIBRARY_NAME).symlink_to(shared / native.LIBRARY_NAME)
    monkeypatch.setenv(native.ENV_OVERRIDE, str(mine / native.LIBRARY_NAME))
    status = native.status()
    assert not status.loaded
    assert "writable by other users" in status.error and str(shared) in status.error


def test_a_library_below_a_world_writable_folder_is_refused(tmp_path, monkeypatch, repo_root):
    # The library's own folder is fine, but its parent lets anyone rename it.
    lib_dir = tmp_path / "open" / "lib"
    lib_dir.mkdir(parents=True)
    shutil.copy(_built_library(repo_root), lib_dir / native.LIBRARY_NAME)
    os.chmod(tmp_path / "open", 0o777)
    monkeypatch.setenv(native.ENV_OVERRIDE, str(lib_dir / native.LIBRARY_NAME))
    status = native.status()
    assert not status.loaded
    assert "writable by other users" in status.error and str(tmp_path / "open") in status.error


def test_a_missing_library_degrades_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(native, "candidate_paths", lambda: [tmp_path / "nope" / native.LIBRARY_NAME])
    status = native.status()
    assert not status.loaded
    assert "not found" in status.error and "npm run build" in status.error


def test_a_wrong_abi_version_is_refused(tmp_path, monkeypatch):
    source = tmp_path / "fake.c"
    source.write_text("int cyscope_abi_version(void) { return 99; }\n")
    lib = tmp_path / native.LIBRARY_NAME
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(source)], check=True)
    os.chmod(tmp_path, 0o700)
    monkeypatch.setenv(native.ENV_OVERRIDE, str(lib))
    status = native.status()
    assert not status.loaded
    assert status.abi == 99
    assert "ABI version 99" in status.error


def test_a_file_that_is_not_a_library_is_refused(tmp_path, monkeypatch):
    os.chmod(tmp_path, 0o700)
    bogus = tmp_path / native.LIBRARY_NAME
    bogus.write_text("not an ELF file")
    monkeypatch.setenv(native.ENV_OVERRIDE, str(bogus))
    status = native.status()
    assert not status.loaded
    assert "cannot load" in status.error
