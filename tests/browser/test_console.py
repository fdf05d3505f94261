"""The web console (/ui) in a real browser: headless Chromium (the system's, driven by
Playwright) against a live 3-member cluster.

One page, served by a follower, walks every view: the cluster table, the key browser
(prefix navigation, JSON view, a put through the form with its confirm dialog), the
watch tail, leases with their countdown, the metric charts; then the leader is killed
and the page must name the new leader within a few seconds. A key named like an HTML
tag must show as text, never run. Screenshots go to $RAFTKV_ARTIFACTS/console
(default ./test-artifacts/console); RAFTKV_UPDATE_SCREENSHOT=1 also refreshes the one
the README shows (docs/console.png).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster, running

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api")
if CHROMIUM is None and os.environ.get("CI") != "true":  # CI installs it: never skip there
    pytest.skip("no system chromium", allow_module_level=True)

ARTIFACTS = Path(os.environ.get("RAFTKV_ARTIFACTS", "test-artifacts")) / "console"
README_SHOT = Path(__file__).resolve().parents[2] / "docs" / "console.png"
XSS_KEY = "app/<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running(Cluster(tmp_path_factory.mktemp("console"), 3)) as c:
        yield c


def _lease(c: Cluster, name: str, ttl: int) -> int:
    port = c.members[name].client_port
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/lease/grant", data=json.dumps({"ttl": ttl}).encode()
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        return int(json.loads(r.read())["id"])


def test_console_views_and_leader_failover(cluster: Cluster) -> None:
    c = cluster
    leader = c.wait_leader()
    served_by = c.followers(leader)[0]
    lease = _lease(c, served_by, 300)
    for key, value, q in (
        ("app/config/db", '{"host":"db1","port":5432}', ""),
        ("app/config/cache", "redis://c1", ""),
        ("app/name", "shop", ""),
        ("app/session", "s1", f"?lease={lease}"),
        (XSS_KEY, "<script>alert(2)</script>", ""),
    ):
        assert c.put(served_by, urllib.parse.quote(key), value, q).status == 200
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{c.members[served_by].client_port}"
    dialogs: list[str] = []

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.set_default_timeout(10_000)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            def on_dialog(d: playwright.Dialog) -> None:
                dialogs.append(f"{d.type}:{d.message}")
                d.accept() if d.type == "confirm" else d.dismiss()

            page.on("dialog", on_dialog)
            page.goto(base + "/")  # redirects to /ui/
            assert page.url.endswith("/ui/")

            # Cluster view: three healthy members, the right leader, served by a follower.
            playwright.expect(page.locator("#leader-name")).to_have_text(leader)
            playwright.expect(page.locator("#served-by")).to_have_text(served_by)
            playwright.expect(page.locator("#members tbody tr")).to_have_count(3)
            playwright.expect(page.locator("#members tbody td.ok")).to_have_count(3)
            leader_role = page.locator(f'tr[data-member="{leader}"] td.role-leader')
            playwright.expect(leader_role).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "cluster.png"))
            if os.environ.get("RAFTKV_UPDATE_SCREENSHOT") == "1":
                README_SHOT.parent.mkdir(exist_ok=True)
                page.screenshot(path=str(README_SHOT))

            # Key browser: prefix navigation, then a value as pretty JSON.
            page.click('nav button[data-tab="keys"]')
            page.click('#keylist li.dir:text-is("app/")')
            playwright.expect(page.locator("#crumbs")).to_contain_text("app")
            page.click('#keylist li.dir:text-is("config/")')
            page.click('#keylist li[data-key="app/config/db"]')
            playwright.expect(page.locator("#value")).to_have_text('{"host":"db1","port":5432}')
            page.select_option("#value-mode", "json")
            playwright.expect(page.locator("#value")).to_contain_text('"port": 5432')
            # A key that looks like markup is shown as text and runs nothing.
            page.click('#crumbs a:text-is("app")')
            page.click(f'#keylist li[data-key="{XSS_KEY}"]')
            playwright.expect(page.locator("#value")).to_have_text("<script>alert(2)</script>")
            assert page.locator("#keyview img").count() == 0
            # A put through the form (confirm dialog accepted) reaches the store.
            page.fill("#put-key", "app/from-browser")
            page.fill("#put-value", "hello")
            page.click('#putform button[type="submit"]')
            playwright.expect(page.locator("#value-key")).to_have_text("app/from-browser")
            got = c.get(leader, "app/from-browser", "?raw")
            assert got.status == 200 and got.body == b"hello"
            # History across revisions.
            assert c.put(served_by, "app/name", "shop-2").status == 200
            page.click('#crumbs a:text-is("app")')
            page.click('#keylist li[data-key="app/name"]')
            page.click('#keyview button:text-is("History")')
            playwright.expect(page.locator("#history li")).to_have_count(2)
            playwright.expect(page.locator("#history")).to_contain_text("shop")
            page.screenshot(path=str(ARTIFACTS / "keys.png"))

            # Watch tail of a prefix.
            page.click('nav button[data-tab="watch"]')
            page.fill("#watch-prefix", "app/")
            page.click("#watch-start")
            playwright.expect(page.locator("#watch-state")).to_contain_text("watching")
            assert c.put(leader, "app/watched", "w1").status == 200
            assert c.req(leader, "DELETE", "/v1/kv/app/watched").status == 200
            put_event = page.locator("#events li.PUT")
            playwright.expect(put_event).to_contain_text("PUT app/watched = w1")
            playwright.expect(page.locator("#events li.DELETE")).to_contain_text("app/watched")
            page.click("#watch-stop")
            playwright.expect(page.locator("#watch-state")).to_have_text("stopped")

            # Leases: the lease, its key, a countdown.
            page.click('nav button[data-tab="leases"]')
            row = page.locator(f'#leases tr[data-lease="{lease}"]')
            playwright.expect(row).to_contain_text("app/session")
            ttl = row.locator("td.ttl")
            first = int(ttl.inner_text().split()[0])
            page.wait_for_timeout(2100)
            assert int(ttl.inner_text().split()[0]) < first <= 300

            # Metrics: six charts with values.
            page.click('nav button[data-tab="metrics"]')
            playwright.expect(page.locator("#charts canvas")).to_have_count(6)
            term_value = page.locator('[data-series="raftkv_server_term"] .value')
            playwright.expect(term_value).not_to_have_text("–")
            page.screenshot(path=str(ARTIFACTS / "metrics.png"))

            # Failover: kill -9 the leader; the page names the new one within seconds.
            page.click('nav button[data-tab="cluster"]')
            c.kill(leader)
            t0 = time.monotonic()
            playwright.expect(page.locator("#leader-name")).not_to_have_text(leader, timeout=10_000)
            playwright.expect(page.locator("#leader-name")).not_to_have_text("none", timeout=10_000)
            took = time.monotonic() - t0
            old_row = page.locator(f'tr[data-member="{leader}"] td.bad').first
            playwright.expect(old_row).to_have_text("unreachable")
            page.screenshot(path=str(ARTIFACTS / "failover.png"))
            new_leader = page.locator("#leader-name").inner_text()
            assert new_leader in c.members and new_leader != leader
            print(f"console showed the new leader {new_leader} {took:.1f} s after the kill")
            assert errors == []
            assert all(d.startswith("confirm:") for d in dialogs), dialogs  # no alert() ran
        finally:
            browser.close()
