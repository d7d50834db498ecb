"""Output files: checked before anything is computed or printed, written through temporary files
next to them and renamed into place together, so that nothing is ever half written. Every
problem is an :class:`archsim.errors.OutputError` naming the option and the path."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Optional

from archsim.errors import OutputError


def default_mode(path) -> None:
    """The permissions a plain open() would give a new file (a temporary file is private)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def _label(path, option: Optional[str]) -> str:
    return f"{option} {path}" if option else str(path)


def _temp(p: Path, option: Optional[str]) -> Path:
    """A new temporary file next to ``p``, with ``p``'s suffix (writers that pick the format
    from the name, or append a suffix, see the real one)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.stem}.", suffix=f".tmp{p.suffix}")
    except OSError as e:
        raise OutputError(f"{_label(p, option)}: cannot create a file in {p.parent} ({e.strerror or e})") from None
    os.close(fd)
    return Path(tmp)


def check_writable(path, option: Optional[str] = None, *, make_dirs: bool = False) -> Path:
    """``path`` as a Path once it is known that a file can be written there (a temporary file is
    created and removed); with ``make_dirs`` a missing folder is created, else it is an error."""
    if path is None or not str(path).strip():
        raise OutputError(f"{option or 'output'}: an empty file name")
    p = Path(path)
    label = _label(p, option)
    if p.name in ("", ".", "..") or p.is_dir():
        raise OutputError(f"{label}: is a folder, not a file")
    if p.exists() and not p.is_file():
        raise OutputError(f"{label}: exists and is not a regular file")
    parent = p.parent
    if not parent.exists():
        if not make_dirs:
            raise OutputError(f"{label}: folder {parent} does not exist")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{label}: cannot write (folder {parent}: {e.strerror or e})") from None
    elif not parent.is_dir():
        raise OutputError(f"{label}: {parent} is not a folder")
    _temp(p, option).unlink()
    return p


@contextlib.contextmanager
def atomic_outputs(targets: Iterable[tuple], *, make_dirs: bool = False):
    """``with atomic_outputs([(path, option), ...]) as tmps:`` write each file to its temporary
    path; when the block ends without an error every file is renamed into place, otherwise none
    is and the temporary files are removed."""
    paths = [(check_writable(p, o, make_dirs=make_dirs), o) for p, o in targets]
    tmps: list[Path] = []
    try:
        for p, o in paths:
            tmps.append(_temp(p, o))
        try:
            yield tmps
        except OSError as e:
            names = ", ".join(_label(p, o) for p, o in paths)
            raise OutputError(f"{names}: cannot write ({e.strerror or e})") from None
        for tmp, (p, o) in zip(tmps, paths):
            default_mode(tmp)
            try:
                os.replace(tmp, p)
            except OSError as e:
                raise OutputError(f"{_label(p, o)}: cannot write ({e.strerror or e})") from None
    finally:
        for tmp in tmps:
            if tmp.exists():
                tmp.unlink()


def write_texts(files: Iterable[tuple], *, make_dirs: bool = True) -> None:
    """Write every ``(path, text[, option])`` or none of them."""
    files = [(f[0], f[1], f[2] if len(f) > 2 else None) for f in files]
    if not files:
        return
    with atomic_outputs([(p, o) for p, _, o in files], make_dirs=make_dirs) as tmps:
        for tmp, (_, text, _) in zip(tmps, files):
            tmp.write_text(text)
