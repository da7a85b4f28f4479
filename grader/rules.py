"""The online grader's rules, mirrored in a case's process with Python's audit hooks (`sys.addaudithook`).

The homework states them: no exit, no writing files ("file writing is disabled"), no reading files outside the
assignment's, no network, no forking. Each audited action of those kinds is checked against ALLOWED below; anything
else is a breach, named in one line: the rule, what was touched, and the line of the submission's code that led to
it. Enforced (the default), the action fails with a PermissionError, as it would online: a case it ends scores 0, and
one whose code catches it is scored on what it returns, the breach listed under it.
`python -m grader ... --report_rules` lets every action through and only reports it.

What is allowed, and why:
- reading the submission's own folder and the data folder beside it: the assignment's files;
- reading Python's installation and every folder on sys.path: the interpreter and the libraries import and load
  their own files (torch's kernels, transformers' configs, the tokenizer's files shipped in a package);
- reading the model caches: the HF cache (HF_HOME, HF_HUB_CACHE, ~/.cache/huggingface) and the package's converted
  model (HOMEWORK_CACHE, ~/.cache/homework), as the course's machine has its models cached;
- reading /proc, /sys and /dev: the runtime reads the CPUs, memory and devices there (torch's thread count,
  /dev/null, /dev/urandom), and a few files of /etc that the C library and Python read at start: the dynamic
  linker's cache, the time zone, the locale and name-service settings (READ_ETC);
- the grader's own actions: sending the case's result, forking the case's process; reading its own files;
- what the libraries do for themselves while they are imported (LIBRARY_WORK, each found by the function on the
  stack): Python's tempfile tries the temp folder once (a file written and removed); ctypes.util.find_library runs
  `ldconfig -p` (trio, imported by the libraries, looks for libpthread); torch makes its compile cache folder
  (/tmp/torchinductor_USER); urllib3 binds a socket to ::1 port 0 to learn whether IPv6 exists (nothing is sent);
  and /dev/null, opened for writing as a sink.
"""
import contextlib
import os
import sys
import threading
from pathlib import Path

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
WRITE_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.truncate", "os.chmod", "os.chown", "os.link",
                "os.symlink", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile", "os.chflags", "os.setxattr",
                "os.removexattr"}
NETWORK_EVENTS = {"socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind", "socket.getaddrinfo",
                  "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo", "urllib.Request"}
SOCKET_METHODS = {"socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind"}  # (the socket, its address)
FORK_EVENTS = {"os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system", "subprocess.Popen",
               "pty.spawn", "os.startfile"}
READ_EVENTS = {"os.listdir", "os.scandir"}
READ_SYSTEM = ("/proc", "/sys", "/dev")
# (a file's path ends with this, the function's name): what runs inside such a call is the library's own work
LIBRARY_WORK = {("tempfile.py", "_get_default_tempdir"), ("ctypes/util.py", "find_library"),
                ("torch/_inductor/runtime/cache_dir_utils.py", "cache_dir"), ("urllib3/util/connection.py", "_has_ipv6")}
WRITE_ALLOWED = ("/dev/null",)
# What the kernel's rules (landlock.py) allow beside the hook's: the shared libraries dlopen reads below Python, and
# the ldconfig that ctypes.util.find_library runs (without it, find_library writes a temp file to ask the compiler)
SYSTEM_LIBRARIES = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/sbin/ldconfig", "/usr/sbin/ldconfig",
                    "/sbin/ldconfig.real")
READ_ETC = ("/etc/ld.so.cache", "/etc/localtime", "/etc/timezone", "/etc/locale.alias", "/etc/nsswitch.conf",
            "/etc/host.conf", "/etc/gai.conf", "/etc/os-release", "/usr/share/zoneinfo", "/usr/lib/locale")


def model_caches() -> list[Path]:
    home = Path.home()
    hf = [os.environ.get(v) for v in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE")]
    ours = os.environ.get("HOMEWORK_CACHE")
    return [Path(p).expanduser() for p in [*hf, ours] if p] + [home / ".cache" / "huggingface", home / ".cache" / "homework"]


class Breach(PermissionError):
    """What the course's grader would refuse: the action fails (a case it ends scores 0)."""


class Rules:
    """The audit hook of one process: `breaches` holds one line for each action against the rules, the first few."""

    MAX_KEPT = 20

    def __init__(self, workdir: Path, package: str, enforce: bool = True):
        self.package_dir = (Path(workdir) / package).resolve()
        self.enforce = enforce
        self.breaches: list[str] = []
        self.reads = [Path(workdir).resolve(), Path(__file__).resolve().parent, *model_caches(), Path(sys.prefix), Path(sys.base_prefix),
                      *(Path(p) for p in sys.path if p), *map(Path, READ_SYSTEM), *map(Path, READ_ETC)]
        if os.environ.get("HOMEWORK_DATA"):
            self.reads.append(Path(os.environ["HOMEWORK_DATA"]).expanduser())
        self.reads = [p.resolve() if p.exists() else p for p in self.reads]
        self.local = threading.local()  # .own: the grader's own code is acting (its result, its fork)
        self.checking = False  # True once the submission starts: the grader's import of torch comes before

    @contextlib.contextmanager
    def own(self):
        """A block in which the grader acts for itself (its result, the fork of a case): not checked."""
        self.local.own = getattr(self.local, "own", 0) + 1
        try:
            yield
        finally:
            self.local.own -= 1

    def kernel_paths(self) -> tuple[list[Path], list[Path]]:
        """(readable, writable) for the kernel's restriction (landlock.py): what the hook lets the submission read,
        and the system's shared libraries, which the loader reads below Python (no audit event sees them); and the
        devices it may write: /dev/null, and a GPU's."""
        return [*self.reads, *map(Path, SYSTEM_LIBRARIES)], [*map(Path, WRITE_ALLOWED), *Path("/dev").glob("nvidia*")]

    def install(self):
        sys.dont_write_bytecode = True  # importing the submission writes no __pycache__ beside it
        sys.addaudithook(self.hook)

    def hook(self, event: str, args: tuple):
        if not self.checking or getattr(self.local, "own", 0) or getattr(self.local, "busy", False):
            return
        self.local.busy = True  # the checks below open no file, but guard against hooks within hooks
        try:
            breach = self.judge(event, args)
            if breach and self.library_work():
                breach = None
        finally:
            self.local.busy = False
        if breach:
            line = f"{breach} ({self.where()})"
            if len(self.breaches) < self.MAX_KEPT and line not in self.breaches:
                self.breaches.append(line)
            if self.enforce:
                raise Breach(f"the course's grader does not allow this: {breach}")

    def judge(self, event: str, args: tuple) -> str | None:
        """The rule an audited action breaks, with what it touched; None if it keeps to them."""
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int) or path is None:
                return None  # an open file descriptor: the file was judged when it was opened
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (mode is None and flags & WRITE_FLAGS)
            if writes:
                return None if os.fsdecode(path) in WRITE_ALLOWED else f"no writing files: {os.fsdecode(path)}"
            return None if self.readable(path) else f"no reading outside the assignment: {os.fsdecode(path)}"
        if event in READ_EVENTS:
            path = args[0] if args and args[0] is not None else "."
            return None if isinstance(path, int) or self.readable(path) else \
                f"no reading outside the assignment: {os.fsdecode(path)}"
        if event in WRITE_EVENTS:
            return f"no writing files: {event} {shown(args[0]) if args else ''}".rstrip()
        if event in NETWORK_EVENTS:
            address = args[:2] if event == "socket.getaddrinfo" else args[1] if event in SOCKET_METHODS else args[0]
            return f"no network: {event} {shown(address)}"
        if event in FORK_EVENTS:
            command = args[1] if event == "subprocess.Popen" and len(args) > 1 else args[0] if args else ""
            return f"no forking: {event} {shown(command)}".rstrip()
        return None

    def readable(self, path) -> bool:
        try:
            target = Path(os.fsdecode(path)).resolve()
        except (OSError, ValueError, RuntimeError):
            return False
        return any(target == allowed or allowed in target.parents for allowed in self.reads)

    def library_work(self) -> bool:
        """Whether a function of LIBRARY_WORK is on the stack: the action is a library's own."""
        frame = sys._getframe(2)  # the frame whose call was audited (0: this one, 1: the hook)
        while frame is not None:
            code = frame.f_code
            if any(code.co_name == name and code.co_filename.endswith(file) for file, name in LIBRARY_WORK):
                return True
            frame = frame.f_back
        return False

    def where(self) -> str:
        """The innermost line of the submission's code on the stack, or what ran outside it."""
        frame = sys._getframe(2)
        while frame is not None:
            file = frame.f_code.co_filename
            try:
                inside = Path(file).resolve().is_relative_to(self.package_dir)
            except (OSError, ValueError):
                inside = False
            if inside:
                return f"{Path(file).resolve().relative_to(self.package_dir.parent)}:{frame.f_lineno}"
            frame = frame.f_back
        return "outside the submission's code"


def shown(value) -> str:
    text = os.fsdecode(value) if isinstance(value, (str, bytes, os.PathLike)) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
