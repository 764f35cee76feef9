"""hunt's workdir, claimed for one hunt alone: two hunts in one folder (``make -j2``, or the same
``--workdir``) would each train whichever copies were written last."""

from __future__ import annotations

import os
import secrets
import time
from typing import Optional

from caffe_nantools.files import writable
from caffe_nantools.hunt.inputs import HuntError

#: The folder of the checked copies, made exclusively: whoever makes it owns the workdir.
CLAIM = "checked"


def claim_workdir(workdir: Optional[str]) -> str:
    """The workdir, made for this hunt: ``workdir`` (created, or an empty folder), else a new
    ``nantools-hunt-YYYYmmdd-HHMMSS-XXXXXXXX`` in the current folder (unique within the second).
    Its ``checked/`` folder is made exclusively, so of two hunts given one workdir only one goes
    on.

    Raises:
        HuntError: a read-only or missing place, a file or a folder with files in the way, a
            workdir another hunt claimed (one line; nothing is left behind).
    """
    check_workdir(workdir)
    if workdir is None:
        workdir = _new_default()
    else:
        try:
            os.mkdir(workdir)
        except FileExistsError:
            pass  # an empty folder given, or one made by another hunt just now: the claim decides
        except OSError as e:
            raise HuntError(
                f"{{workdir}}: cannot make it ({_why(e)})", arguments={"workdir": workdir}
            ) from None
    try:
        os.mkdir(os.path.join(workdir, CLAIM))
    except FileExistsError:
        raise HuntError(
            "{workdir}: another hunt is using it; give a new folder", arguments={"workdir": workdir}
        ) from None
    except OSError as e:
        raise HuntError(
            f"{{workdir}}: cannot write in it ({_why(e)})", arguments={"workdir": workdir}
        ) from None
    return workdir


def _new_default() -> str:
    """A new folder named for the second, with a random part: hunts started in the same second
    (``make -j2``) each get their own."""
    stamp = time.strftime("nantools-hunt-%Y%m%d-%H%M%S")
    while True:
        workdir = f"{stamp}-{secrets.token_hex(4)}"
        try:
            os.mkdir(workdir)  # the umask's mode, as the user's other folders
            return workdir
        except FileExistsError:
            continue
        except OSError as e:
            raise HuntError(
                f"{os.getcwd()}: cannot make hunt's workdir there ({_why(e)})"
            ) from None


def check_workdir(workdir: Optional[str]) -> None:
    """Refuse a workdir hunt cannot make or use, before anything is written (see
    :func:`claim_workdir`)."""
    if workdir is None:
        _check_parent(os.curdir, os.getcwd())
        return
    arguments = {"workdir": workdir}
    if not os.path.lexists(workdir):
        parent = os.path.dirname(os.path.abspath(workdir))
        _check_parent(parent, parent)
    elif not os.path.isdir(workdir):
        raise HuntError(
            "{workdir}: exists and is not a folder; give a new folder", arguments=arguments
        )
    elif os.listdir(workdir):
        raise HuntError(
            "{workdir}: exists and is not empty; give a new folder (or an empty one)",
            arguments=arguments,
        )
    elif not writable(workdir):
        raise HuntError(
            "{workdir}: is read-only; give a folder hunt may write in", arguments=arguments
        )


def _check_parent(folder: str, name: str) -> None:
    if not os.path.isdir(folder):
        raise HuntError(f"{name}: no such folder, to make hunt's workdir in; make it first")
    if not writable(folder):
        raise HuntError(
            f"{name}: is read-only, hunt cannot make its workdir there; give --workdir in a "
            "folder hunt may write in"
        )


def _why(e: OSError) -> str:
    return e.strerror or type(e).__name__
