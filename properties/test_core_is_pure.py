"""The core is importable by other tools: no JupyterHub, no I/O libraries."""

import subprocess
import sys


def test_core_imports_no_shell_dependencies():
    code = (
        "import importlib, pkgutil, sys, traefik_proxy.core\n"
        # every module of the core, also those the package does not import
        "for m in pkgutil.iter_modules(traefik_proxy.core.__path__):\n"
        "    importlib.import_module('traefik_proxy.core.' + m.name)\n"
        "loaded = {'jupyterhub', 'httpx', 'traitlets', 'etcd3', 'redis', 'consul'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
