"""The board is firmware: importing it must not pull in torch or gymnasium."""

import subprocess
import sys


def test_import_firmware_sim_stays_light():
    code = (
        "import sys, firmware_sim, firmware_sim.engine, firmware_sim.server, firmware_sim.cli;"
        "heavy = [m for m in ('torch', 'gymnasium') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
