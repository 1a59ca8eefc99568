"""benchmarks/RESULTS.md: one section per benchmark, replaced in place, and the machine line every section states."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shlex
import sys
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine_line() -> str:
    """The machine, software versions, date and load a section was measured with."""
    import jax

    devices = f"{jax.device_count()} {jax.default_backend()} device(s)"
    return (f"{platform.machine()}, {os.cpu_count()} cores, {devices}, Python {platform.python_version()}, "
            f"jax {jax.__version__}, {platform.system()}; {datetime.date.today().isoformat()}; "
            f"1-minute load average before the run {os.getloadavg()[0]:.1f}")


def replace_section(content: str, section: str) -> str:
    """``content`` with the section headed like ``section``'s first line replaced by it (appended if absent)."""
    heading = section.splitlines()[0]
    if not heading.startswith("## "):
        raise ValueError(f"a section starts with a '## ' heading, got {heading!r}")
    block = section.strip("\n") + "\n\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(content):
        return pattern.sub(lambda _: block, content, count=1).rstrip("\n") + "\n"
    return content.rstrip("\n") + "\n\n" + block.rstrip("\n") + "\n"


def write_section(section: str, path: Path = RESULTS) -> None:
    """Replace (or append) ``section`` in the results file at ``path``."""
    content = path.read_text() if path.exists() else "# Benchmark results\n"
    path.write_text(replace_section(content, section))


def command_line(module: str, argv=None) -> str:
    """How ``module`` was run with ``argv`` (the process's arguments when None), as a user would type it."""
    return shlex.join(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)])


def publish(section: str, write: bool, path: Path = RESULTS) -> str:
    """Print ``section``, and with ``write`` replace it in the results file at ``path``; return it."""
    print(section)
    if write:
        write_section(section, path)
    return section


def records_folder(text: str) -> Path:
    """argparse type of ``--records DIR``: the folder that keeps a study's records (it need not exist yet)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: a file, not a folder; give the folder that keeps a study's records")
    return path
