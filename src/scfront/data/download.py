"""Downloading and safely extracting the official CIFAR-10 python release.

The tarball is fetched over https, checked against its published md5 and only then extracted.
Extraction never trusts member names: only regular files under ``cifar-10-batches-py/`` with a
plain relative name are written (no links, devices, absolute paths or ``..``), each atomically.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from scfront.data.cifar_batches import BATCHES_DIR, TARBALL_MD5, TARBALL_NAME, verify_md5
from scfront.errors import DatasetError
from scfront.io import atomic_write, atomic_write_bytes

log = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_MAX_MEMBER_BYTES = 256 << 20  # a batch file is ~31 MB; anything far larger is not CIFAR-10


def download_file(url: str, dest: Path, expected_md5: str, timeout: float = 60.0) -> Path:
    """Stream ``url`` to ``dest`` (atomically) with a progress bar; DatasetError on a network
    failure or an md5 mismatch (the partial file is discarded)."""
    if not url.startswith("https://"):
        raise DatasetError(f"refusing to download over a non-https URL: {url}")

    def write(tmp: Path) -> None:
        digest = hashlib.md5(usedforsecurity=False)
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=None) as bar:
                while block := response.read(1 << 20):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
        if digest.hexdigest() != expected_md5:
            raise DatasetError(f"downloaded {url} has md5 {digest.hexdigest()}, expected "
                               f"{expected_md5}; try again")

    try:
        return atomic_write(dest, write)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise DatasetError(f"cannot download {url}: {exc}") from None


def _safe_member_name(name: str) -> str | None:
    """The normalised relative name under BATCHES_DIR, or None if the name is unsafe."""
    if name.startswith(("/", "\\")) or "\\" in name or ":" in name:
        return None
    norm = posixpath.normpath(name)
    parts = norm.split("/")
    if norm.startswith("..") or ".." in parts or parts[0] != BATCHES_DIR:
        return None
    return norm


def _checked_member(member: tarfile.TarInfo, tarball: Path) -> bool:
    """True for a file to extract, False for the batches folder entry; DatasetError otherwise."""
    name = _safe_member_name(member.name)
    if member.isdir() and name is not None:
        return False
    if name is None or not member.isfile() or name == BATCHES_DIR:
        raise DatasetError(f"{tarball}: refusing archive member {member.name!r} "
                           f"(expected regular files under {BATCHES_DIR}/)")
    if member.size > _MAX_MEMBER_BYTES:
        raise DatasetError(f"{tarball}: member {member.name!r} is implausibly large")
    return True


def extract_cifar10(tarball: Path, dest: Path, expected_md5: str = TARBALL_MD5) -> Path:
    """Verify ``tarball``'s md5, then extract its ``cifar-10-batches-py/`` files into ``dest``.

    Returns ``dest / "cifar-10-batches-py"``. Raises DatasetError on a checksum mismatch, an
    unreadable archive, or any member that is not a safe regular file in that folder.
    """
    tarball, dest = Path(tarball), Path(dest)
    if not tarball.is_file():
        raise DatasetError(f"tarball {tarball} does not exist")
    verify_md5(tarball, expected_md5)
    try:
        # Check every member before writing anything, so a bad archive leaves no partial tree.
        with tarfile.open(tarball, "r:gz") as archive:
            files = [_checked_member(member, tarball) for member in archive]
        with tarfile.open(tarball, "r:gz") as archive:
            for member in archive:
                name = _safe_member_name(member.name)
                if name is None or not member.isfile():
                    continue  # the folder entry itself (the first pass refused anything else)
                handle = archive.extractfile(member)
                if handle is None:  # pragma: no cover - isfile() members always have data
                    continue
                atomic_write_bytes(dest / name, handle.read())
    except (tarfile.TarError, EOFError) as exc:
        raise DatasetError(f"cannot read {tarball} as a gzip tar archive: {exc}") from None
    written = sum(files)
    if written == 0:
        raise DatasetError(f"{tarball} holds no files under {BATCHES_DIR}/")
    log.info("extracted %d files to %s", written, dest / BATCHES_DIR)
    return dest / BATCHES_DIR


def download_cifar10(dest: Path, keep_tarball: bool = True) -> Path:
    """Download the official CIFAR-10 python release into ``dest`` and extract it.

    Returns the ``cifar-10-batches-py`` folder. An already downloaded tarball with the right
    md5 is reused.
    """
    dest = Path(dest)
    tarball = dest / TARBALL_NAME
    if tarball.is_file():
        try:
            verify_md5(tarball, TARBALL_MD5)
            log.info("reusing %s", tarball)
        except DatasetError:
            tarball.unlink()
    if not tarball.is_file():
        download_file(CIFAR10_URL, tarball, TARBALL_MD5)
    folder = extract_cifar10(tarball, dest)
    if not keep_tarball:
        tarball.unlink()
    return folder
