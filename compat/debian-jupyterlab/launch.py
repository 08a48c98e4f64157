#!/usr/bin/python3
"""Serve the JupyterLab 4.5 assembled in build/ with Debian 12's own packages.

Runs on /usr/bin/python3 with python3-jupyter-server (1.23) and
python3-jupyterlab-server (2.16): no JupyterLab from PyPI. Prebuilt
extensions and kernelspecs are found the standard way, in the
`labextensions/` and `kernels/` folders of the Jupyter data path
(JUPYTER_PATH first).

    /usr/bin/python3 launch.py --port 8890 --root-dir ~/notebooks \\
        --state-dir /tmp/lab-state [--token T] [--expose-app-in-browser]

Loopback only and always behind a token (a random one is made and printed
when none is given). The run is self-contained: runtime files, user settings,
workspaces and the user's Jupyter config folder live under --state-dir
(~/.jupyter is not read; the system-wide /etc/jupyter still is).
"""

import argparse
import os
import secrets
import sys
from pathlib import Path

BUILD = Path(__file__).resolve().parent / "build"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8890)
    parser.add_argument("--root-dir", type=Path, default=Path.cwd())
    parser.add_argument(
        "--state-dir",
        type=Path,
        required=True,
        help="runtime files, user settings and workspaces go here",
    )
    parser.add_argument("--token", default=None, help="default: a random one")
    parser.add_argument(
        "--expose-app-in-browser",
        action="store_true",
        help="make the application reachable as window.jupyterapp (tests)",
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not (BUILD / "static" / "bundle.js").is_file():
        sys.exit(f"{BUILD} has no JupyterLab build: run build.sh first")
    if args.token == "":
        sys.exit("an empty token would leave the server open: give one or none")
    token = args.token or secrets.token_hex(24)

    state = args.state_dir.resolve()
    # Not JUPYTER_NO_CONFIG: it makes a new temporary folder in every process
    # (kernels too) and never removes it.
    os.environ["JUPYTER_RUNTIME_DIR"] = str(state / "runtime")
    os.environ["JUPYTER_CONFIG_DIR"] = str(state / "config")

    # Imported only now: jupyter_core reads the variables above.
    from debian_lab import DebianLab

    print(f"JupyterLab: http://127.0.0.1:{args.port}/lab?token={token}", flush=True)
    DebianLab.launch_instance(
        [
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={args.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.token={token}",
            f"--ServerApp.root_dir={args.root_dir.resolve()}",
            "--ServerApp.open_browser=False",
            # Refused as root unless allowed; these machines run everything as root.
            f"--ServerApp.allow_root={os.geteuid() == 0}",
            f"--DebianLab.user_settings_dir={state / 'settings'}",
            f"--DebianLab.workspaces_dir={state / 'workspaces'}",
            f"--DebianLab.expose_app_in_browser={args.expose_app_in_browser}",
        ]
    )


if __name__ == "__main__":
    main()
