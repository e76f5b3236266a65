"""End-to-end: the explorer page in headless Chromium (Debian's chromium) driven by Playwright with real mouse and
keyboard input; every decoded image the page shows is compared with the API's /api/decode of the page's z."""
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
pytest.importorskip("fastapi", reason="the serve extra (fastapi, uvicorn) is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (pip) is not installed")

ARTIFACTS = Path(os.environ.get("VAEKIT_TEST_ARTIFACTS") or Path(__file__).resolve().parents[2] / "artifacts")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
N_EXAMPLES = 12
SETTLED = ("() => document.body.dataset.ready === '1' && !window.explorer.busy() && "
           "document.getElementById('decoded').dataset.z === JSON.stringify(window.explorer.z())")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    from vaekit.core.config import ModelConfig
    from vaekit.core.model import VAE
    from vaekit.jobs.explore.server import create_app

    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 8, 8), latent_dim=4, hidden=(32,))).eval()
    examples = torch.rand(N_EXAMPLES, 64)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(model, examples, np.arange(N_EXAMPLES) % 3), host="127.0.0.1",
                                        port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    th.join(5)


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(server)
        pg.wait_for_function(SETTLED)
        pg.wait_for_selector(f'#map circle[data-index="{N_EXAMPLES - 1}"]')
        pg.errors = errors
        yield pg
        browser.close()
    assert errors == []


def _api(page, path, body=None):
    r = page.request.post(path, data=body) if body is not None else page.request.get(path)
    assert r.ok, (path, r.status)
    return r.json()


def _shown(page, server) -> list[float]:
    """Wait until the page has drawn its current z; check the picture is the API's decode of that z; → z."""
    page.wait_for_function(SETTLED)
    z = page.evaluate("window.explorer.z()")
    assert page.get_attribute("#decoded", "src") == _api(page, server + "api/decode", {"z": z})["image"]
    return z


def _example_z(page, server, i: int) -> list[float]:
    return _api(page, f"{server}api/example/{i}")["z"]


def test_sliders_are_ordered_by_kl_and_show_it(page, server):
    kl = _api(page, server + "api/latent")["kl"]
    ids = page.eval_on_selector_all("#sliders input[type=range]", "els => els.map(e => e.id)")
    assert ids == [f"z{i}" for i in np.argsort(-np.asarray(kl), kind="stable")]
    shown = page.eval_on_selector_all("#sliders .kl", "els => els.map(e => e.textContent)")
    assert shown == [f"{kl[i]:.2f}" for i in np.argsort(-np.asarray(kl), kind="stable")]
    assert len(page.query_selector_all(".thumb img")) == N_EXAMPLES
    assert page.evaluate("[...document.querySelectorAll('.thumb img')].every(i => i.complete && i.naturalWidth > 0)")


def test_clicking_a_thumbnail_loads_its_code(page, server):
    page.locator('.thumb[data-index="3"]').click()
    assert _shown(page, server) == pytest.approx(_example_z(page, server, 3), abs=1e-6)
    page.locator('.thumb[data-index="8"]').click()
    assert _shown(page, server) == pytest.approx(_example_z(page, server, 8), abs=1e-6)
    assert page.evaluate("window.explorer.picks()") == [3, 8]
    page.locator("#interpolate").click()  # between the last two picks
    want = _api(page, server + "api/interpolate", {"a": 3, "b": 8, "steps": 8})["image"]
    page.wait_for_function("src => document.getElementById('strip').src === src", arg=want)


def test_clicking_a_map_point_with_the_mouse_loads_it(page, server):
    for i in (5, 10):
        box = page.locator(f'#map circle[data-index="{i}"]').bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        hit = int(page.evaluate("([x, y]) => document.elementFromPoint(x, y).dataset.index", [x, y]))
        page.mouse.click(x, y)  # the dot drawn on top there (overlapping dots: `hit`, most often i)
        assert _shown(page, server) == pytest.approx(_example_z(page, server, hit), abs=1e-6)
        assert page.evaluate("window.explorer.picks()")[1] == hit


def test_keyboard_thumbnails_map_points_and_sliders(page, server):
    page.locator('.thumb[data-index="1"]').focus()
    page.keyboard.press("Tab")  # the thumbnails are in the tab order, one after the other
    assert page.evaluate("document.activeElement.dataset.index") == "2"
    page.keyboard.press("Enter")
    assert _shown(page, server) == pytest.approx(_example_z(page, server, 2), abs=1e-6)
    page.keyboard.press("Tab")
    page.keyboard.press(" ")
    assert _shown(page, server) == pytest.approx(_example_z(page, server, 3), abs=1e-6)
    page.locator('#map circle[data-index="7"]').focus()
    page.keyboard.press("Enter")
    assert _shown(page, server) == pytest.approx(_example_z(page, server, 7), abs=1e-6)
    page.locator('#map circle[data-index="4"]').focus()
    page.keyboard.press(" ")
    assert _shown(page, server) == pytest.approx(_example_z(page, server, 4), abs=1e-6)
    page.locator("#zero").click()
    before = page.get_attribute("#decoded", "src")
    assert _shown(page, server) == [0, 0, 0, 0]
    top = page.eval_on_selector("#sliders input[type=range]", "e => parseInt(e.id.slice(1))")
    page.locator(f"#z{top}").focus()
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    z = _shown(page, server)
    assert z[top] == pytest.approx(0.2) and sum(abs(v) for v in z) == pytest.approx(0.2)
    assert page.get_attribute("#decoded", "src") != before


def test_slider_drag_and_screenshot(page, server, tmp_path):
    slider = page.locator("#sliders input[type=range]").first
    box = slider.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.95, box["y"] + box["height"] / 2)  # near +3
    z = _shown(page, server)
    assert max(z) > 2.0
    shot = tmp_path / "explorer.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 1000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "explorer.png")
    print(f"explorer screenshot: {ARTIFACTS / 'explorer.png'}")
