"""A seccomp filter for a case's process and everything it starts: what Landlock (landlock.py) does not cover.

- listen(2): Landlock refuses a TCP bind, but a socket that listens without one is bound by the kernel itself to a
  free port, and Landlock is not asked; another process could then connect in.
- Extended attributes: Landlock has no right for them, so setxattr(2) and removexattr(2) on a readable file would
  change it.

Each fails with EACCES, on x86-64 and arm64, the two machines that have Landlock and a course's GPU. Like Landlock,
the filter needs no_new_privs, and it holds for every process the case forks or runs.
"""
import ctypes
import errno
import platform

PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
LOAD_WORD, JUMP_IF_EQUAL, RETURN = 0x20, 0x15, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K
NR_OFFSET, ARCH_OFFSET = 0, 4  # in struct seccomp_data
X32_BIT = 0x40000000  # x86-64's x32 calls: the same calls, other numbers
XATTR_AT = [463, 466]  # setxattrat, removexattrat (Linux 6.13): one number on every machine
# machine: (the kernel's AUDIT_ARCH, the refused calls' numbers: listen, then {,l,f}setxattr and {,l,f}removexattr)
LISTEN_AND_XATTR = {"x86_64": [50, 188, 189, 190, 197, 198, 199], "aarch64": [201, 5, 6, 7, 14, 15, 16]}
MACHINES = {
    "x86_64": (0xC000003E, [n for call in LISTEN_AND_XATTR["x86_64"] + XATTR_AT for n in (call, X32_BIT | call)]),
    "aarch64": (0xC00000B7, LISTEN_AND_XATTR["aarch64"] + XATTR_AT),
}


class Instruction(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(Instruction))]


def program(arch: int, numbers: list[int]) -> list[tuple[int, int, int, int]]:
    """The filter: another architecture's calls pass; each of `numbers` fails with EACCES; the rest pass."""
    n = len(numbers)
    steps = [(LOAD_WORD, 0, 0, ARCH_OFFSET), (JUMP_IF_EQUAL, 0, n + 1, arch), (LOAD_WORD, 0, 0, NR_OFFSET)]
    steps += [(JUMP_IF_EQUAL, n - i, 0, number) for i, number in enumerate(numbers)]  # a match: on to the refusal
    return steps + [(RETURN, 0, 0, SECCOMP_RET_ALLOW), (RETURN, 0, 0, SECCOMP_RET_ERRNO | errno.EACCES)]


def restrict() -> bool:
    """Install the filter in this process; False where this machine or kernel can't (the audit hooks remain)."""
    machine = MACHINES.get(platform.machine())
    if machine is None:
        return False
    steps = program(*machine)
    code = (Instruction * len(steps))(*[Instruction(*step) for step in steps])
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return False
    return libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(Program(len(steps), code)), 0, 0) == 0
