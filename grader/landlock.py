"""The course's rules enforced by the kernel: Landlock (Linux 5.13 and later), through its three system calls.

A case's process calls `restrict` before it imports the submission. From then on, in it and every process it starts
(children inherit the restriction, and a fork keeps it):
- no file is made, written, truncated, renamed or removed anywhere, but the character devices `writable` names
  (/dev/null; a GPU's /dev/nvidia*): the result goes back over a pipe opened before;
- files are read and executed only under `readable` (the assignment, Python and its libraries, the model caches,
  /proc, /sys, /dev and a few files of /etc);
- no TCP connect or bind (ABI 4 and later);
- no signal to a process outside the restriction, and no abstract UNIX socket outside it (ABI 6 and later): the
  submission can't stop the grader.

Processes: Landlock does not stop a fork or an exec; the audit hooks (rules.py) refuse those, and a program it runs
would still be held by the restriction. We call the kernel through ctypes (the numbers are the same on every
architecture) rather than a binding such as landlockpy: a case's process imports only the standard library and
torch, so that it runs in whatever environment the submission's requirements make, and these are four calls.
"""
import ctypes
import os
import platform
from pathlib import Path

CREATE_RULESET, ADD_RULE, RESTRICT_SELF = 444, 445, 446  # the same on every architecture (asm-generic numbers)
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38

# Filesystem rights, by the ABI that added them
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
WRITES_V1 = sum(1 << bit for bit in range(4, 13))  # remove dir/file, make char/dir/reg/sock/fifo/block/sym
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
BIND_TCP, CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6


class RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _call(number: int, *args) -> int:
    result = _libc.syscall(ctypes.c_long(number), *args)
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return result


def abi() -> int:
    """The kernel's Landlock ABI version, or 0 where it has none (not Linux, an older kernel, Landlock off)."""
    if platform.system() != "Linux":
        return 0
    try:
        return _call(CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    except OSError:
        return 0


def restrict(readable: list[Path], writable: list[Path]) -> int:
    """Restrict this process and its future children as the module says; returns the ABI applied (0: none, where the
    kernel has no Landlock). A path that does not exist is skipped."""
    version = abi()
    if not version:
        return 0
    fs = EXECUTE | WRITE_FILE | READ_FILE | READ_DIR | WRITES_V1
    fs |= (REFER if version >= 2 else 0) | (TRUNCATE if version >= 3 else 0) | (IOCTL_DEV if version >= 5 else 0)
    attr = RulesetAttr(fs, BIND_TCP | CONNECT_TCP if version >= 4 else 0,
                       SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if version >= 6 else 0)
    size = 8 if version < 4 else 16 if version < 6 else 24  # the attribute's size says which fields the caller knows
    ruleset = _call(CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    try:
        device = IOCTL_DEV if version >= 5 else 0
        for paths, rights in ((readable, EXECUTE | READ_FILE | READ_DIR | device), (writable, WRITE_FILE | device)):
            for path in dict.fromkeys(map(str, paths)):
                _allow(ruleset, path, rights & fs)
        _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        _call(RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)
    return version


def _allow(ruleset: int, path: str, rights: int):
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # not there (or not ours to see): nothing to allow
    try:
        if not os.path.isdir(path):  # a file takes only the rights of a file
            rights &= EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
        rule = PathBeneathAttr(rights, fd)
        _call(ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0))
    finally:
        os.close(fd)
