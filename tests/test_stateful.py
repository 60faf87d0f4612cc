"""Random interleavings of concurrent add/delete/get_all_routes, checked against a model.

A hypothesis rule-based state machine drives one real proxy (real traefik,
real store) per backend kind. Each step fires a burst of concurrent calls;
the model applies them in submission order (the order the proxy queues them).
After every step get_all_routes must equal the model; at the end, what
Traefik actually serves must too.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from .proxies import PROXY_KINDS, make_proxy
from .utils import Backend

ROUTES = [f"/user/u{i}/" for i in range(6)] + ["/user/u0/named/", "/"]
op_strategy = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(ROUTES), st.sampled_from(["a", "b"])),
    st.tuples(st.just("delete"), st.sampled_from(ROUTES), st.none()),
    st.tuples(st.just("get_all"), st.none(), st.none()),
)


@pytest.mark.parametrize("kind", sorted(PROXY_KINDS))
def test_concurrent_operations_match_model(kind, request, tmp_path):
    loop = asyncio.new_event_loop()
    run = loop.run_until_complete
    backends = {name: run(Backend(name).start()) for name in ("a", "b")}
    # a fresh routespec root per kind run, so a reused store starts empty for us
    root = f"/sm-{uuid.uuid4().hex[:8]}"

    async def started_proxy():
        # constructed inside this loop: store clients bind to the running loop
        proxy = make_proxy(kind, request, tmp_path)
        await proxy.start()
        return proxy

    proxy = run(started_proxy())

    def spec(routespec: str) -> str:
        return root + routespec

    class ProxyMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.model: dict[str, tuple[str, dict]] = {}
            # every run starts from an empty set of routes
            run(gather(*(proxy.delete_route(spec(r)) for r in ROUTES)))

        @rule(ops=st.lists(op_strategy, min_size=1, max_size=12))
        def burst(self, ops):
            calls = []
            # the model after each prefix of the burst's changes. Batches are
            # taken in submission order, so a read during the burst shows each
            # route as one of these states has it. (Not one whole state: a
            # key-value store applies a batch's deletions and its writes as
            # two transactions, and a read can fall between them.)
            states = [self.expected()]
            for i, (what, routespec, backend) in enumerate(ops):
                if what == "add":
                    data = {"step": i, "backend": backend}
                    calls.append(proxy.add_route(spec(routespec), backends[backend].url, data))
                    self.model[routespec] = (backend, data)
                elif what == "delete":
                    calls.append(proxy.delete_route(spec(routespec)))
                    self.model.pop(routespec, None)
                else:
                    calls.append(proxy.get_all_routes())
                    continue
                states.append(self.expected())
            results = run(gather(*calls))
            for (what, _, _), result in zip(ops, results):
                if what == "get_all":
                    seen = self.ours(result)
                    for r in set(seen) | {k for state in states for k in state}:
                        held = [state.get(r) for state in states]
                        assert seen.get(r) in held, (
                            f"get_all_routes during a burst showed {r} as {seen.get(r)}, "
                            f"which it never was in the burst: {held}"
                        )
                else:
                    assert result is None

        def expected(self) -> dict:
            return {
                spec(r): {"routespec": spec(r), "target": backends[b].url, "data": d}
                for r, (b, d) in self.model.items()
            }

        @staticmethod
        def ours(routes: dict) -> dict:
            return {k: v for k, v in routes.items() if k.startswith(root)}

        @invariant()
        def routes_match_model(self):
            assert self.ours(run(proxy.get_all_routes())) == self.expected()

        def teardown(self):
            # what Traefik serves agrees with the model (add_route waited for
            # it; deletes are not waited for, so give those a moment)
            async def check():
                async with httpx.AsyncClient(base_url=proxy.public_url) as client:
                    for routespec in ROUTES:
                        path = spec(routespec) + "probe"
                        owner = _longest_owner(routespec + "probe", self.model)
                        for _ in range(100):
                            response = await client.get(path)
                            got = response.json()["backend"] if response.status_code == 200 else None
                            if got == owner:
                                break
                            await asyncio.sleep(0.05)
                        assert got == owner, (path, got, owner)

            run(check())

    try:
        run_state_machine_as_test(
            ProxyMachine,
            settings=settings(
                max_examples=8,
                stateful_step_count=6,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    finally:
        run(proxy.stop())
        for backend in backends.values():
            run(backend.stop())
        loop.close()


async def gather(*coroutines):
    # gather inside the running loop, so its futures belong to that loop
    return await asyncio.gather(*coroutines)


def _longest_owner(path: str, model: dict[str, tuple[str, dict]]) -> str | None:
    """The backend the longest routespec prefix of ``path`` points to."""
    matches = [r for r in model if path.startswith(r)]
    if not matches:
        return None
    return model[max(matches, key=len)][0]
