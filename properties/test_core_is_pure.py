"""The core is importable by other tools: no JupyterHub, no I/O libraries."""

import subprocess
import sys


def test_core_imports_no_shell_dependencies():
    code = (
        "import sys, traefik_proxy.core\n"
        "loaded = {'jupyterhub', 'httpx', 'traitlets', 'etcd3', 'redis', 'consul'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
