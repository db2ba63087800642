import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if not path:
        pytest.fail("promtool not found: run ops/setup.sh (installs Debian's prometheus package)")
    return path
