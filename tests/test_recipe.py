"""The seams and the extension recipe of jupyterhub-traefik-proxy, through real traefik.

- the recipe's worked example (examples/etcd_gateway_proxy.py: a TKvProxy
  with only its settings, its provider and the three ``_kv_*`` methods)
  starts, serves, lists and deletes routes with real etcd and traefik, and
  is what docs/new-store.md shows;
- a store class with neither the methods nor ``_make_store`` is refused at
  start with the three names;
- ``_setup_traefik_static_config`` extends ``self.static_config`` (async, or
  a plain method returning ``super()``'s), recomputed from the settings;
- ``_apply_dynamic_config(dict, jupyterhub_config)`` and
  ``_delete_dynamic_config(traefik_keys, jupyterhub_keys)`` on every store;
- ``_cleanup`` closes what the proxy holds, awaited or not.

jupyterhub-traefik-proxy's own suite against these classes: tests/test_upstream_suite.py.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sys
from pathlib import Path

import pytest

from traefik_proxy import core
from traefik_proxy.fileprovider import TraefikFileProviderProxy
from traefik_proxy.kv import TKvProxy

from .proxies import make_proxy, proxy_kwargs, served_by, serves
from .utils import wait_for

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "etcd_gateway_proxy.py"


def load_example():
    spec = importlib.util.spec_from_file_location("etcd_gateway_proxy", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- the recipe


async def test_the_recipe_example_serves_routes_through_traefik(etcd_server, backends, tmp_path):
    example = load_example()
    proxy = example.EtcdGatewayProxy(
        **proxy_kwargs(tmp_path),
        gateway_url=etcd_server.url,
        kv_traefik_prefix="recipe/traefik",
        kv_jupyterhub_prefix="recipe/jupyterhub",
    )
    await proxy.start()
    try:
        await proxy.add_route("/", backends["hub"].url, {"hub": True})
        users = [f"/user/u{i:03d}/" for i in range(40)]  # one bucket splits (bucket size 32)
        await asyncio.gather(*(proxy.add_route(u, backends["a"].url, {"n": i}) for i, u in enumerate(users)))
        assert await served_by(proxy, "/user/u007/lab") == "a"
        assert await served_by(proxy, "/hub/home") == "hub"
        routes = await proxy.get_all_routes()
        assert set(routes) == {"/", *users}
        assert routes["/user/u007/"]["data"] == {"n": 7}
        await proxy.delete_route("/user/u007/")
        assert await proxy.get_route("/user/u007/") is None
        await wait_for(lambda: serves(proxy, "/user/u007/lab", "hub"))  # a delete is not waited for
        # the keys are in etcd, where Traefik's etcd provider read them
        stored = await proxy._kv_get_tree("recipe/")
        assert stored and all(key.startswith(("recipe/traefik/", "recipe/jupyterhub/")) for key in stored)
        assert any(key.startswith("recipe/jupyterhub/routes/") for key in stored)
    finally:
        await proxy.stop()
    assert proxy._client is None  # its _cleanup ran with stop()


def test_the_docs_show_the_example_as_it_is():
    doc = (REPO / "docs" / "new-store.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert EXAMPLE.read_text() in blocks


class ProviderOnly(TKvProxy):
    provider_name = "etcd"

    async def _setup_traefik_static_config(self) -> None:
        self.static_config["providers"] = {"etcd": {"endpoints": ["127.0.0.1:1"]}}
        await super()._setup_traefik_static_config()


class SetOnly(ProviderOnly):
    async def _kv_atomic_set(self, to_set):
        pass


@pytest.mark.parametrize(
    "cls, named",
    [
        (
            ProviderOnly,
            ["_kv_atomic_set(to_set)", "_kv_atomic_delete(*keys)", "_kv_get_tree(prefix)", "_make_store()"],
        ),
        (SetOnly, ["_kv_atomic_delete(*keys) and _kv_get_tree(prefix)", "it has _kv_atomic_set"]),
    ],
)
async def test_a_store_class_without_its_methods_is_refused_at_start(cls, named, tmp_path):
    proxy = cls(**proxy_kwargs(tmp_path))
    with pytest.raises(NotImplementedError) as raised:
        await proxy.start()
    for name in named:
        assert name in str(raised.value)
    assert proxy.traefik_process is None  # nothing left running


def test_provider_name_comes_from_the_one_provider_when_a_class_does_not_set_it(tmp_path):
    class Unnamed(SetOnly):
        provider_name = TKvProxy.provider_name  # as if the class had not set it

    assert Unnamed(**proxy_kwargs(tmp_path)).provider_name == "etcd"


# ---------------------------------------------------------------- static config


class AsyncSeam(TraefikFileProviderProxy):
    async def _setup_traefik_static_config(self) -> None:
        self.static_config.setdefault("entryPoints", {})["extra"] = {"address": "127.0.0.1:1"}
        await super()._setup_traefik_static_config()


class PlainSeam(TraefikFileProviderProxy):
    def _setup_traefik_static_config(self):  # the older project's etcd/redis classes' form
        self.static_config.setdefault("entryPoints", {})["extra"] = {"address": "127.0.0.1:1"}
        return super()._setup_traefik_static_config()


class AwaitingSeam(TraefikFileProviderProxy):
    async def _setup_traefik_static_config(self) -> None:
        await asyncio.sleep(0.01)
        await super()._setup_traefik_static_config()


@pytest.mark.parametrize("cls", [AsyncSeam, PlainSeam])
def test_the_static_config_seam_extends_self_static_config(cls, tmp_path):
    proxy = cls(
        **proxy_kwargs(tmp_path),
        dynamic_config_file=str(tmp_path / "rules.toml"),
        static_config={"accessLog": {}},  # set before: kept under what is computed
        extra_static_config={"entryPoints": {"extra": {"address": "127.0.0.1:2"}}},
    )
    config = proxy.traefik_static_config()
    assert config is proxy.static_config
    assert config["accessLog"] == {} and config["providers"]["file"]["watch"] is True
    assert config["entryPoints"]["extra"] == {"address": "127.0.0.1:2"}  # extra over the subclass
    assert config["entryPoints"]["http"]["address"] == proxy.public_url.split("//")[1]
    # computed afresh from the settings, not from the last result
    proxy.traefik_log_level = "DEBUG"
    assert proxy.traefik_static_config()["log"]["level"] == "DEBUG"
    assert proxy.traefik_static_config() == config | {"log": {**config["log"], "level": "DEBUG"}}


def test_a_static_config_seam_doing_io_is_a_clear_error(tmp_path):
    proxy = AwaitingSeam(**proxy_kwargs(tmp_path), dynamic_config_file=str(tmp_path / "rules.toml"))
    with pytest.raises(RuntimeError, match="_setup_traefik_static_config awaited something"):
        proxy.traefik_static_config()


async def test_dynamic_config_set_before_start_is_written_with_the_hubs_own(request, backends, tmp_path):
    extra_router = {
        "http": {
            "routers": {"ops": {"rule": "PathPrefix(`/ops`)", "service": "ops", "entryPoints": ["http"]}},
            "services": {"ops": {"loadBalancer": {"servers": [{"url": backends["b"].url}]}}},
        }
    }
    proxy = make_proxy("file", request, tmp_path, dynamic_config=extra_router)
    await proxy.start()
    try:
        assert proxy.dynamic_config["http"]["routers"]["ops"]["service"] == "ops"
        assert any(
            "api@internal" == r.get("service") for r in proxy.dynamic_config["http"]["routers"].values()
        )
        await wait_for(lambda: serves(proxy, "/ops/x", "b"))
    finally:
        await proxy.stop()


# ---------------------------------------------------------------- dynamic config seams


async def test_apply_and_delete_dynamic_config(proxy, backends, prefix):
    """The older project's add_route, written through its two seams, on every store."""
    routespec = prefix + "legacy/"
    router, service = core.legacy_alias(routespec, "router"), core.legacy_alias(routespec, "service")
    traefik_config = {
        "http": {
            "routers": {
                router: {
                    "rule": core.legacy_rule(routespec),
                    "service": service,
                    "entryPoints": [proxy.traefik_entrypoint],
                    "priority": 10**9,
                }
            },
            "services": {service: {"loadBalancer": {"servers": [{"url": backends["b"].url}]}}},
        }
    }
    jupyterhub_config = {
        "routes": {
            router: {
                "routespec": routespec,
                "target": backends["b"].url,
                "data": {"who": "legacy"},
                "router": router,
            }
        }
    }
    await proxy._apply_dynamic_config(traefik_config, jupyterhub_config)
    await wait_for(lambda: serves(proxy, routespec + "x", "b"), timeout=20)
    assert (await proxy.get_all_routes())[routespec]["data"]["who"] == "legacy"
    assert (await proxy.get_route(routespec))["target"] == backends["b"].url

    with pytest.raises(ValueError, match="only 'routes'"):
        await proxy._apply_dynamic_config({}, {"other": {}})

    await proxy._delete_dynamic_config(
        [["http", "routers", router], ["http", "services", service]], [["routes", router]]
    )
    assert await proxy.get_route(routespec) is None
    await wait_for(lambda: serves(proxy, routespec + "x", None), timeout=20)
    assert routespec not in await proxy.get_all_routes()


async def test_cleanup_closes_what_the_proxy_holds(request, tmp_path):
    """Awaited (as the older project's async subclasses do) or not (its plain
    ones): the API client and the store's connections are let go."""
    for awaited in (True, False):
        proxy = make_proxy("etcd", request, tmp_path / str(awaited))
        proxy.traefik_api_password = "x"
        assert proxy.kv_store is not None and proxy._api is not None
        closing = proxy._cleanup()
        if awaited:
            await closing
        else:
            await asyncio.sleep(0.1)
        assert proxy._kv_store is None and proxy._traefik_api is None
