"""Runs nginx in the foreground for tests: its configuration, pid file, logs and temporary files
all live in one directory, and it listens only on a free loopback port.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["Nginx", "NginxError", "find_nginx", "free_port", "nginx_version"]

LOOPBACK = "127.0.0.1"
_SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"]
)
_VERSION = re.compile(r"nginx/(\d+)\.(\d+)\.(\d+)")
_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

ServerConfig = Callable[["Nginx"], str]


class NginxError(RuntimeError):
    """nginx is missing, or did not start or stop as expected."""


def find_nginx() -> str:
    """Return the path of the nginx binary, or fail saying how to install it."""
    binary = shutil.which("nginx", path=_SEARCH_PATH)
    if binary is None:
        raise NginxError("nginx not installed: apt-get install nginx")
    return binary


def nginx_version(binary: str) -> tuple[int, int, int]:
    """Return the version of the nginx at `binary`, as a tuple of three numbers."""
    completed = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10)
    match = _VERSION.search(completed.stderr + completed.stdout)
    if match is None:
        raise NginxError(f"cannot read the version of {binary}: {completed.stderr.strip()!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def free_port() -> int:
    """Return a TCP port on the loopback address that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


class Nginx:
    """An nginx master process in the foreground, configured by the caller's `server` blocks.

    `server_config(nginx)` returns the text that goes inside `http { ... }` once `nginx.port`
    holds the chosen loopback port; `nginx.listen_http2()` gives the directives of a TLS
    listener with HTTP/2 on it in the syntax of the installed version. Use as a context
    manager, or call `start()` and `stop()`.
    """

    def __init__(self, directory: str | os.PathLike[str], server_config: ServerConfig) -> None:
        self.binary = find_nginx()
        self.version = nginx_version(self.binary)
        self.directory = Path(directory)
        self.server_config = server_config
        self.port = 0
        self.config_path = self.directory / "nginx.conf"
        self.error_log_path = self.directory / "error.log"
        self.access_log_path = self.directory / "access.log"
        self.process: subprocess.Popen[bytes] | None = None

    def listen_http2(self) -> str:
        """The directives of a TLS listener with HTTP/2 on the loopback `port`."""
        if self.version >= (1, 25, 1):
            return f"listen {LOOPBACK}:{self.port} ssl; http2 on;"
        return f"listen {LOOPBACK}:{self.port} ssl http2;"

    def _config_text(self) -> str:
        lines = [
            f"pid {self.directory / 'nginx.pid'};",
            f"error_log {self.error_log_path} info;",
            "worker_processes 1;",
        ]
        if os.geteuid() == 0:
            user = pwd.getpwuid(os.geteuid()).pw_name
            group = grp.getgrgid(os.getegid()).gr_name
            lines.append(f"user {user} {group};")
        lines += ["events {", "    worker_connections 64;", "}", "http {"]
        lines.append(f"    access_log {self.access_log_path};")
        for kind in _TEMP_PATHS:
            temp = self.directory / f"{kind}_temp"
            temp.mkdir(exist_ok=True)
            lines.append(f"    {kind}_temp_path {temp};")
        lines.append(self.server_config(self))
        lines.append("}")
        return "\n".join(lines) + "\n"

    def error_log(self) -> str:
        """What nginx wrote to its error log so far."""
        try:
            return self.error_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _command(self) -> list[str]:
        command = [self.binary, "-p", str(self.directory), "-c", str(self.config_path)]
        if self.version >= (1, 19, 5):
            command += ["-e", str(self.error_log_path)]
        return command + ["-g", "daemon off;"]

    def _wait_listening(self, deadline: float) -> bool:
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                socket.create_connection((LOOPBACK, self.port), timeout=0.2).close()
                return True
            except OSError:
                time.sleep(0.02)
        return False

    def start(self, timeout: float = 10.0) -> Nginx:
        """Write the configuration, start nginx and wait until it accepts connections."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):
            self.port = free_port()
            self.config_path.write_text(self._config_text())
            checked = subprocess.run(
                [*self._command()[:-2], "-t", "-q"], capture_output=True, text=True, timeout=10
            )
            if checked.returncode != 0:
                raise NginxError(f"bad nginx configuration:\n{checked.stderr}{self.error_log()}")

            self.process = subprocess.Popen(
                self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            if self._wait_listening(time.monotonic() + timeout):
                return self
            self.stop()
            if "Address already in use" not in self.error_log():
                break
        raise NginxError(f"nginx did not start listening on port {self.port}:\n{self.error_log()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop nginx (fast shutdown) and wait for it; kill it if it does not exit in time."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
            raise NginxError("nginx did not stop on SIGTERM and was killed") from None

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
