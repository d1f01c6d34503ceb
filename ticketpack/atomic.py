"""Atomic file writes: a reader sees the old file or the new one, never half of one.

What a write does with what is already at the path: a regular file is replaced and keeps its
permission bits; a symbolic link is followed (the file it points to is replaced, atomically,
in that file's folder; the link stays); a directory, device, FIFO or socket is refused with
``UsageError`` (exit 2) before anything is written. A new file gets the mode the umask allows
(0666 & ~umask), as ``open`` would give it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import OutputWriteError, UsageError


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``.

    If the block raises, the temporary file is removed and ``path`` is untouched.
    """
    target = check_output_path(path)
    folder = target.parent
    mode = _mode_for(target)
    try:
        # the name cut short: a 255-byte name leaves no room for the temporary file's affixes
        fd, tmp = tempfile.mkstemp(prefix=f".{os.fsdecode(os.fsencode(target.name)[:64])}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise _write_error(target, exc) from exc
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, OutputWriteError):
            raise _write_error(target, exc) from exc
        raise


def check_output_path(path: str | os.PathLike) -> Path:
    """The file a write to ``path`` would replace, refused early (UsageError) when its folder
    does not exist or it is not a regular file: long jobs check before they start."""
    try:
        target = _resolve_target(Path(path))
        folder = target.parent if str(target.parent) else Path(".")
        if not folder.is_dir():
            raise UsageError(f"output: folder {str(folder)!r} does not exist")
    except OSError as exc:  # a name too long for the file system, a loop of links
        raise _write_error(Path(path), exc) from None
    return target


def refuse_input_overwrite(outputs: dict[str, str | os.PathLike | None],
                           inputs: dict[str, list[str | os.PathLike] | str | os.PathLike | None]) -> None:
    """Refuse (UsageError, before any work) an output that is one of the command's inputs, or
    two outputs that are one file: same resolved path (links followed), or the same file
    reached by another name (device and inode)."""
    seen: list[tuple[str, Path]] = []
    for label, value in inputs.items():
        for p in ([] if value is None else [value] if isinstance(value, (str, os.PathLike)) else value):
            seen.append((label, Path(p)))
    for label, out in outputs.items():
        if out is None:
            continue
        for other, path in seen:
            if _same_file(Path(out), path):
                raise UsageError(f"{label} {str(out)!r} is also the {other} {str(path)!r}: writing it would "
                                 f"replace an input; choose another output path (nothing written)")
        seen.append((label, Path(out)))


def _same_file(a: Path, b: Path) -> bool:
    try:
        if os.path.realpath(a) == os.path.realpath(b):
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except (OSError, ValueError):  # unreadable or unnamable paths: other checks report them
        return False


def _resolve_target(path: Path) -> Path:
    """The regular file a write replaces: symlinks followed; anything but a file refused."""
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        st = target.stat()
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise _write_error(target, exc) from exc
    if not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
                or stat.S_ISBLK(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise UsageError(f"output {str(path)!r}: is {kind}, expected a regular file path; nothing written")
    return target


def _mode_for(target: Path) -> int:
    """An existing file's permission bits, else what the umask leaves of 0666."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _write_error(target: Path, exc: OSError) -> OutputWriteError:
    # still an OSError (errno kept) for callers that catch those; the CLI shows one line, exit 2
    error = OutputWriteError(f"output {str(target)!r}: cannot write ({exc.strerror or exc}); "
                             f"the previous file, if any, is untouched")
    error.errno = exc.errno
    return error


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path) as fh:
        fh.write(data)
