"""A private copy of a LevelDB folder to read: opening a LevelDB runs its recovery, which
rewrites CURRENT, MANIFEST and LOG, turns .log files into tables and deletes them, and drops the
records of a damaged .log without a word. Done on a copy, the user's folder stays as it was
(a read-only one included) and what recovery drops can be named."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import List, Optional, Tuple

#: Table files, never changed once written: hard-linked where the filesystem allows.
IMMUTABLE = (".ldb", ".sst")
#: Files LevelDB makes anew on opening: a copy would only be renamed away.
NOT_COPIED = ("LOCK", "LOG", "LOG.old")
_DROPPED = re.compile(r"(?:\(ignoring error\) )?(\S+): dropping (\d+) bytes; (.*)")


def private_copy(path: str, folder: Optional[str] = None) -> str:
    """A new temporary folder (in ``folder``, else under TMPDIR) holding the LevelDB files of
    ``path``: table files hard-linked (copied on another filesystem), the rest copied. The
    caller removes it.

    Raises:
        OSError: a file of ``path`` cannot be read, or the copy cannot be written.
    """
    copy = tempfile.mkdtemp(prefix="caffe-nantools-leveldb-", dir=folder)
    try:
        for entry in os.scandir(path):
            if not entry.is_file() or entry.name in NOT_COPIED:
                continue
            target = os.path.join(copy, entry.name)
            if entry.name.endswith(IMMUTABLE):
                try:
                    os.link(entry.path, target)
                    continue
                except OSError:  # another filesystem, or links not allowed here
                    pass
            shutil.copyfile(entry.path, target)
    except BaseException:
        shutil.rmtree(copy, ignore_errors=True)
        raise
    return copy


def recovery_losses(copy: str) -> List[Tuple[str, str]]:
    """What LevelDB's recovery of ``copy`` dropped, from the LOG it wrote there: (file name,
    what was lost) per damaged stretch."""
    try:
        with open(os.path.join(copy, "LOG"), encoding="utf-8", errors="replace") as f:
            log = f.read()
    except OSError:
        return []
    losses = []
    for match in _DROPPED.finditer(log):
        name, size, why = match.groups()
        losses.append((os.path.basename(name), f"{size} bytes dropped ({why.strip()})"))
    return losses
