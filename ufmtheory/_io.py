"""File output shared by every writer in the package: atomic writes that never clobber what they should not.

Policy (one for the whole package):

* A write goes to a temporary file in the target's folder, is flushed to disk, then renamed over the target,
  so a reader sees the old file or the new one, never a partial one, even when the writer is killed.
* Only regular files are replaced. A path naming a device, a folder, a FIFO or a socket is refused with a
  ``ValueError`` (as root, ``--out /dev/full`` would otherwise replace the device node). A symbolic link to
  a regular file is followed: the file it points to is replaced and the link stays.
* New files get the usual permissions (``0o666`` less the process umask); a replaced file keeps its mode.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "check_output_dir", "check_output_file"]


def _umask() -> int:
    # os.umask can only be read by setting it; restore it at once (the package writes no files in threads
    # that race with this).
    current = os.umask(0)
    os.umask(current)
    return current


def check_output_file(path: str | os.PathLike[str], name: str = "path") -> Path:
    """The real path a write to ``path`` would replace, after checking that the write can happen.

    Raises:
        ValueError: ``path`` exists and is not a regular file (or a link to one), or its folder exists as
            something other than a folder. The message names ``name``.
    """
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path
    if target.exists() and not target.is_file():
        kind = "a folder" if target.is_dir() else "not a regular file"
        raise ValueError(f"{name}: refusing to replace {str(path)!r}: it is {kind}")
    check_output_dir(target.parent, name)
    return target


def check_output_dir(path: str | os.PathLike[str], name: str = "out") -> Path:
    """Check that ``path`` is (or can be created as) a writable folder, before any work starts.

    Raises:
        ValueError: ``path`` or one of its parents exists as a non-folder, or the folder is not writable.
    """
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ValueError(f"{name}: {str(path)!r} cannot be a folder: {str(probe)!r} is not a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: {str(probe)!r} is not writable")
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename).

    Follows the module's policy: only regular files (or links to them) are replaced, new files get
    ``0o666 & ~umask``, replaced files keep their mode.

    Raises:
        ValueError: ``path`` is not a regular file, or its folder cannot be created.
    """
    target = check_output_file(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise ValueError(f"cannot create the folder of {str(path)!r}: {exc}") from None
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
