"""End to end in a real browser: headless Chromium through traefik to JupyterHub.

The browser only ever talks to traefik's public URL. It logs in with the demo
password, lets the Hub spawn the user's server, waits for JupyterLab, opens a
notebook and runs a cell (which needs the kernel's websocket, proxied by
traefik), stops the server from the Hub's control panel and finally visits
/user/<name>/lab again to get the Hub's "Server not running" page.

Screenshots go to test-artifacts/ at the top of the repository. A second test
opens Traefik's dashboard (traefik_dashboard) on the routers page.

Playwright, not Selenium: its Python package drives the system Chromium over
the DevTools protocol with no chromedriver to match, waits for elements by
itself, and reports every websocket the page opens (frames, errors, close),
which is what tells a kernel-websocket failure through traefik apart from a
slow page. No browser is downloaded: it launches Debian's /usr/bin/chromium.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .hub_process import HubProcess, environment_without_proxies, route_records

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
USER = "alice"
PASSWORD = "test-password-" + secrets.token_hex(4)
TIME_LIMIT = 90  # seconds, Hub start to Hub exit


def find_chromium() -> str | None:
    """$CHROMIUM if set, else Debian's chromium (or Ubuntu's chromium-browser)."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    for candidate in ("chromium", "chromium-browser", "/usr/bin/chromium"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


CHROMIUM = find_chromium()

# In CI (CI=true) the Makefile installs Chromium; if that failed, the run must
# fail rather than go green with the browser test skipped.
IN_CI = os.environ.get("CI", "").lower() == "true"

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None and not IN_CI,
        reason=f"no chromium binary ({os.environ.get('CHROMIUM') or 'chromium on PATH'}): "
        "apt-get install chromium, or set CHROMIUM=/path/to/chromium",
    ),
    pytest.mark.skipif(
        not Path("/proc/self/stat").exists(), reason="finds the Hub's child processes in /proc"
    ),
]

# Without these Chromium tries to reach Google's services, which on a closed
# network stalls startup and page loads.
CHROMIUM_ARGS = [
    "--no-sandbox",  # needed as root; harmless otherwise in a throwaway profile
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
]


@dataclass
class SocketLog:
    """What happened to each websocket the page opened, by URL."""

    opened: list[str] = field(default_factory=list)
    frames_received: dict[str, int] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)

    def watch(self, ws) -> None:
        url = ws.url
        self.opened.append(url)
        self.frames_received.setdefault(url, 0)

        def received(_payload):
            self.frames_received[url] += 1

        ws.on("framereceived", received)
        ws.on("socketerror", lambda error: self.errors.append((url, str(error))))
        ws.on("close", lambda _ws: self.closed.append(url))

    def kernel_channels(self) -> list[str]:
        return [u for u in self.opened if re.search(r"/api/kernels/[^/]+/channels", u)]


def screenshot(page, name: str, shots: list[Path], prefix: str = "browser") -> Path:
    path = ARTIFACTS / f"{prefix}-{name}.png"
    page.screenshot(path=str(path))
    shots.append(path)
    return path


def test_browser_login_lab_kernel_stop(tmp_path, capsys):
    assert CHROMIUM is not None, (
        "CI=true but no chromium binary: `make chromium` (part of `make test`) failed to "
        "install Debian's chromium; see its output above"
    )

    started = time.monotonic()
    with HubProcess(tmp_path, PASSWORD) as hub:
        browse(hub, tmp_path, capsys)
        hub.stop()
    assert time.monotonic() - started < TIME_LIMIT


def browse(
    hub: HubProcess,
    tmp_path: Path,
    capsys,
    *,
    prefix: str = "browser",
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> None:
    """Chromium logs in, runs a cell in JupyterLab and stops the server, at ``hub.public_url``.

    ``args`` and ``env`` are added to Chromium's (the HTTPS test maps a name
    and trusts a CA); screenshots are named ``<prefix>-<step>.png``.
    """
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob(f"{prefix}-*"):  # no stale screenshot passes for this run's
        old.unlink()
    shots: list[Path] = []
    console: list[str] = []
    sockets = SocketLog()
    with sync_playwright() as playwright:
        hub.wait_ready()
        public = hub.public_url
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # fresh --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=[*CHROMIUM_ARGS, *args],
            env={**environment_without_proxies(), **(env or {})},
            viewport={"width": 1280, "height": 800},
        )
        browser.set_default_timeout(30_000)
        page = browser.pages[0] if browser.pages else browser.new_page()
        page.on("websocket", sockets.watch)
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
        try:
            # --- the login page, through traefik
            response = page.goto(f"{public}/hub/login")
            assert response is not None and response.ok, response
            expect(page.locator("#username_input")).to_be_visible()
            screenshot(page, "login", shots, prefix)

            # --- log in; the Hub spawns the server and sends us to JupyterLab
            page.fill("#username_input", USER)
            page.fill("#password_input", hub.password)
            page.click("#login_submit")
            page.wait_for_url(re.compile(rf"^{re.escape(public)}/user/{USER}/lab"), timeout=60_000)
            (server,) = hub.servers(USER).values()
            assert server["ready"], server
            routespec = f"/user/{USER}/"
            assert routespec in route_records(hub.rules)
            hub.note_children()

            # --- JupyterLab: open a notebook from the launcher and run a cell
            notebook_card = page.locator('.jp-LauncherCard[data-category="Notebook"]').first
            expect(notebook_card).to_be_visible(timeout=45_000)
            notebook_card.click()
            expect(page.locator(".jp-NotebookPanel .jp-Notebook")).to_be_visible()
            # the kernel's status reaches the page over its websocket: Idle
            # means that websocket, proxied by traefik, works
            kernel_idle = page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle"))
            expect(
                kernel_idle, "the kernel never showed Idle: is its websocket through traefik up?"
            ).to_be_visible(timeout=45_000)
            cell = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first
            cell.click()
            page.keyboard.type("print(6 * 7, 'through traefik')")
            page.keyboard.press("Shift+Enter")
            output = page.locator(".jp-NotebookPanel .jp-OutputArea-output").first
            expect(output).to_have_text(re.compile(r"42 through traefik"), timeout=30_000)
            screenshot(page, "lab", shots, prefix)

            # the kernel websocket went through traefik's public port and worked
            kernel_sockets = sockets.kernel_channels()
            public_ws = "ws" + public.removeprefix("http")
            assert kernel_sockets, f"no kernel websocket opened; websockets: {sockets.opened}"
            through_traefik = f"{public_ws}/user/{USER}/"
            assert all(u.startswith(through_traefik) for u in kernel_sockets), kernel_sockets
            assert any(sockets.frames_received[u] for u in kernel_sockets), sockets.frames_received
            assert not sockets.errors, f"websocket errors: {sockets.errors}"
            assert not [u for u in kernel_sockets if u in sockets.closed], (
                f"kernel websocket closed while in use: {sockets.closed}"
            )

            # --- stop the server from the Hub's control panel
            page.goto(f"{public}/hub/home")
            page.click("#stop")
            expect(page.locator("#start")).to_be_visible(timeout=60_000)
            hub.wait_until(lambda: not hub.servers(USER), 30, "the server stopped")
            assert routespec not in route_records(hub.rules)

            # --- the lab URL again: traefik has no route, the Hub says not running
            response = page.goto(f"{public}/user/{USER}/lab")
            assert response is not None
            assert page.url.startswith(f"{public}/hub/user/{USER}/"), page.url
            assert response.status in (424, 503), (response.status, page.url)
            expect(page.locator("h1")).to_have_text(re.compile("Server not running"))
            expect(page.locator("#start")).to_be_visible()
            screenshot(page, "stopped", shots, prefix)
        except BaseException:
            try:
                screenshot(page, "failure", shots, prefix)
            except Exception as e:  # the browser may be what failed
                print(f"no failure screenshot: {e}")
            print("----- browser console -----", *console, sep="\n")
            print(f"----- websockets -----\nopened: {sockets.opened}\nerrors: {sockets.errors}")
            (ARTIFACTS / f"{prefix}-console.log").write_text("\n".join(console) + "\n")
            shutil.copyfile(hub.log_path, ARTIFACTS / f"{prefix}-jupyterhub.log")
            raise
        finally:
            browser.close()
            with capsys.disabled():
                for path in shots:
                    print(f"\n  screenshot: {path}", end="")
                print()


async def test_dashboard_lists_the_hubs_routers(request, tmp_path):
    """traefik_dashboard: Traefik's dashboard, behind the API's basic auth, lists
    the Hub's routers; the screenshot is test-artifacts/dashboard-routers.png."""
    from playwright.async_api import async_playwright, expect

    from traefik_proxy import core

    from .proxies import make_proxy

    proxy = make_proxy("file", request, tmp_path, traefik_dashboard=True)
    await proxy.start()
    try:
        for user in ("alice", "bob"):
            await proxy.add_route(f"/user/{user}/", "http://127.0.0.1:9", {"user": user})
        ARTIFACTS.mkdir(exist_ok=True)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                env=environment_without_proxies(),
            )
            context = await browser.new_context(
                http_credentials={
                    "username": proxy.traefik_api_username,
                    "password": proxy.traefik_api_password,
                },
                viewport={"width": 1280, "height": 800},
            )
            page = await context.new_page()
            api = proxy.traefik_api_url.replace("localhost", "127.0.0.1")
            await page.goto(f"{api}/dashboard/#/http/routers", timeout=30_000)
            for user in ("alice", "bob"):
                name = core.route_name(f"/user/{user}/", proxy.traefik_namespace)
                await expect(page.get_by_text(name).first).to_be_visible(timeout=30_000)
            await page.screenshot(path=str(ARTIFACTS / "dashboard-routers.png"))
            await browser.close()
    finally:
        await proxy.stop()
