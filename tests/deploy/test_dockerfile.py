"""The Dockerfile, played on this machine (no container runtime here): its install
commands in a fresh virtualenv, then its start command and its HEALTHCHECK, then
SIGTERM, which the process handles itself (exit 0).

Each instruction is interpreted: ``ENV`` sets the environment, ``WORKDIR`` and the
virtualenv's absolute paths are mapped into a temporary directory, ``COPY`` copies from
the repository (each source must be let through by .dockerignore), ``RUN`` runs in bash,
except the root-only system set-up (``groupadd``/``useradd``), which is checked instead.
The only substitutions: the paths above, and a free port and 127.0.0.1 for ``8080`` and
``0.0.0.0`` when starting.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
ROOT_ONLY = ("groupadd", "useradd")


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


def instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continuation
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        keyword, _, args = " ".join(pending).partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
        pending = []
    assert not pending, "the Dockerfile ends inside a continuation"
    return out


def exec_form(args: str) -> list[str]:
    assert args.startswith("["), f"not exec form (a shell would be PID 1, not flowwire): {args}"
    command: list[str] = json.loads(args)
    return command


@dataclass
class Played:
    env: dict[str, str]
    workdir: Path
    fs: Path
    user: str = ""
    users_created: list[str] = field(default_factory=list)
    exposed: list[int] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    stopsignal: str = ""
    cmd: list[str] = field(default_factory=list)
    base: str = ""


def dockerignore_lets_through(source: str) -> bool:
    lines = [x.strip() for x in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [x for x in lines if x and not x.startswith("#")]
    assert rules[0] == "*", ".dockerignore should start by excluding everything"
    return f"!{source}" in rules or f"!{source.rstrip('/')}/" in rules


class Player:
    """Runs the Dockerfile's instructions with ``fs`` standing for the image's root."""

    def __init__(self, fs: Path) -> None:
        shim = fs / "shim"
        shim.mkdir(parents=True)
        (shim / "python").symlink_to(sys.executable)  # the image's `python`
        env = {"PATH": f"{shim}:{os.environ['PATH']}", "HOME": str(fs)}
        self.fs = fs
        self.played = Played(env=env, workdir=fs, fs=fs)

    def mapped(self, text: str) -> str:
        """The image's absolute paths (/opt/..., /src/...) -> under fs, longest first."""
        found = set(re.findall(r"(?<![\w.])(/(?:opt|src|app|srv)[\w/.-]*)", text))
        for path in sorted(found, key=len, reverse=True):
            text = text.replace(path, str(self.fs) + path)
        return text

    def play(self) -> Played:
        for ins in instructions():
            handler = getattr(self, f"do_{ins.keyword.lower()}", None)
            assert handler is not None, f"line {ins.line}: no interpretation for {ins.keyword}"
            handler(ins)
        return self.played

    def do_from(self, ins: Instruction) -> None:
        self.played.base = ins.args

    def do_env(self, ins: Instruction) -> None:
        env = self.played.env
        for pair in shlex.split(ins.args):
            name, _, value = pair.partition("=")
            value = re.sub(r"\$(\w+)|\$\{(\w+)\}", lambda m: env.get(m[1] or m[2], ""), value)
            env[name] = self.mapped(value)

    def do_workdir(self, ins: Instruction) -> None:
        self.played.workdir = self.fs / ins.args.lstrip("/")
        self.played.workdir.mkdir(parents=True, exist_ok=True)

    def do_copy(self, ins: Instruction) -> None:
        *sources, dest = [a for a in shlex.split(ins.args) if not a.startswith("--")]
        target = Path(self.mapped(dest)) if dest.startswith("/") else self.played.workdir / dest
        for source in sources:
            assert dockerignore_lets_through(source), f"line {ins.line}: .dockerignore excludes {source}"
            origin = ROOT / source
            assert origin.exists(), f"line {ins.line}: COPY of a missing {source}"
            into = target / origin.name if dest.endswith("/") else target
            if origin.is_dir():
                shutil.copytree(origin, into, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, into)

    def do_run(self, ins: Instruction) -> None:
        if ins.args.split()[0] in ROOT_ONLY:
            self.played.users_created += re.findall(r"useradd .*--uid (\d+)", ins.args)
            return
        done = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + self.mapped(ins.args)],
            cwd=self.played.workdir, env=self.played.env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert done.returncode == 0, f"line {ins.line}: RUN failed:\n{done.stdout}\n{done.stderr}"

    def do_user(self, ins: Instruction) -> None:
        self.played.user = ins.args

    def do_expose(self, ins: Instruction) -> None:
        self.played.exposed += [int(p.split("/")[0]) for p in ins.args.split()]

    def do_healthcheck(self, ins: Instruction) -> None:
        self.played.healthcheck = exec_form(ins.args.split(" CMD ", 1)[1].strip())

    def do_stopsignal(self, ins: Instruction) -> None:
        self.played.stopsignal = ins.args

    def do_cmd(self, ins: Instruction) -> None:
        self.played.cmd = exec_form(ins.args)


def test_dockerfile_shape() -> None:
    """What the issue asks of the image, read from the file (fast; the next test runs it)."""
    keywords = [i.keyword for i in instructions()]
    first = instructions()[0]
    assert first.keyword == "FROM" and re.match(r"python:3\.1[1-9]-slim", first.args), first.args
    assert keywords.count("USER") == 1 and keywords.index("USER") > max(
        i for i, k in enumerate(keywords) if k == "RUN"
    ), "the image's commands run as the non-root user, after every RUN"
    user = next(i.args for i in instructions() if i.keyword == "USER")
    assert user.split(":")[0] not in ("0", "root")
    runs = " ".join(i.args for i in instructions() if i.keyword == "RUN")
    assert "-r locks/runtime.txt" in runs and "--no-deps ." in runs  # the locked set, nothing resolved
    cmd = exec_form(next(i.args for i in instructions() if i.keyword == "CMD"))
    assert cmd[:2] == ["flowwire", "serve"]
    port = cmd[cmd.index("--port") + 1]
    expose = next(i.args for i in instructions() if i.keyword == "EXPOSE")
    health = next(i.args for i in instructions() if i.keyword == "HEALTHCHECK")
    assert expose == port and f":{port}/healthz" in health


@pytest.mark.timeout(900)
def test_install_and_start_commands_run_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    played = Player(tmp_path).play()
    assert "slim" in played.base
    uid = played.user.split(":")[0]
    assert uid not in ("0", "root") and uid in played.users_created  # the user the image creates
    venv = Path(played.env["VIRTUAL_ENV"])
    assert venv.is_relative_to(tmp_path) and (venv / "bin" / "flowwire").exists()

    # Exactly the locked set (and flowwire itself, from the copied sources).
    freeze = subprocess.run(
        [str(venv / "bin" / "pip"), "freeze", "--exclude", "flowwire"],
        env=played.env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    lock = (ROOT / "locks" / "runtime.txt").read_text()
    pins = {x.lower() for x in lock.splitlines() if x and not x.startswith("#")}
    assert {x.lower() for x in freeze.splitlines()} == pins
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import gateway; print(gateway.__file__)"],
        env=played.env, cwd=played.workdir, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert Path(where.strip()).is_relative_to(venv), where  # installed, not the repository's

    # Start as the image would (the port made free, the address loopback).
    port = str(free_port())
    exposed = str(played.exposed[0])

    def local(argv: list[str]) -> list[str]:
        return [a.replace(exposed, port).replace("0.0.0.0", "127.0.0.1") for a in argv]

    assert shutil.which(played.cmd[0], path=played.env["PATH"]) == str(venv / "bin" / played.cmd[0])
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            local(played.cmd), env=played.env, cwd=played.workdir, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            health = subprocess.run(
                local(played.healthcheck), env=played.env, cwd=played.workdir, capture_output=True, timeout=10
            )
            if health.returncode == 0:
                break
            assert time.monotonic() < deadline, (
                f"HEALTHCHECK never passed:\n{health.stderr!r}\n{log.read_text()}"
            )
            time.sleep(0.2)
        assert played.stopsignal == "SIGTERM"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # the stopped process no longer answers its health check
    assert subprocess.run(local(played.healthcheck), env=played.env, capture_output=True).returncode != 0
